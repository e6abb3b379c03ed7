import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DoctorReport } from '../../src/doctor/diagnose.js';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

/** Runs `harbor-lb doctor` as a user would, on a config written for these nodes. */
export async function runDoctor(
  dir: string,
  nodeUrls: string[],
  rootCert: string,
  extra = '',
): Promise<{ code: number; text: string; report: DoctorReport }> {
  const file = join(dir, `doctor-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(
    file,
    `publicUrl: http://hub.example.com:8070\nnodes:\n${nodeUrls.map((u, i) => `  - {name: n${i + 1}, url: "${u}"}`).join('\n')}\ntoken: {rootCert: "${rootCert}"}\n${extra}`,
  );
  const run = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [CLI, 'doctor', '--config', file, ...args], { timeout: 60_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
  const [json, text] = await Promise.all([run(['--json']), run([])]);
  if (json.code === 2) throw new Error(`doctor could not run: ${json.stderr}`);
  return { code: json.code, text: text.stdout, report: JSON.parse(json.stdout) as DoctorReport };
}
