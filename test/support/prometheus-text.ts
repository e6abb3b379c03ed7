import { execFile } from 'node:child_process';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  /** As the parser names it: a counter's family drops `_total`. */
  name: string;
  type: string;
  help: string;
  samples: Sample[];
}

/** Reads stdin as an exposition; one JSON document out, or a traceback and exit 1 on any line it rejects. */
const PARSE = `
import json, sys
from prometheus_client.parser import text_string_to_metric_families
families = [
    {"name": f.name, "type": f.type, "help": f.documentation,
     "samples": [{"name": s.name, "labels": s.labels, "value": repr(s.value)} for s in f.samples]}
    for f in text_string_to_metric_families(sys.stdin.read())
]
json.dump(families, sys.stdout)
`;

/**
 * Parses Prometheus text exposition with the Prometheus project's own Python client parser
 * (Debian's python3-prometheus-client, installed by scripts/system-deps.sh). The npm parsers
 * are no oracle: parse-prometheus-text-format merges the buckets of every labelled histogram
 * series into one and drops their _sum and _count, and accepts a broken label value silently.
 */
export function parseExposition(text: string): Promise<Family[]> {
  return new Promise((resolve, reject) => {
    const child = execFile('/usr/bin/python3', ['-c', PARSE], { maxBuffer: 64 * 1024 * 1024, timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`the exposition does not parse: ${stderr.trim().split('\n').at(-1) ?? err.message}`));
      const raw = JSON.parse(stdout) as Array<Omit<Family, 'samples'> & { samples: Array<Omit<Sample, 'value'> & { value: string }> }>;
      resolve(raw.map((f) => ({ ...f, samples: f.samples.map((s) => ({ ...s, value: Number(s.value.replace('inf', 'Infinity')) })) })));
    });
    child.stdin!.end(text);
  });
}

/** Every sample of every family, for looking samples up by their own name. */
export function samplesOf(families: Family[], name: string, labels: Record<string, string> = {}): Sample[] {
  return families.flatMap((f) => f.samples).filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}
