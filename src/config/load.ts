import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { configSchema, type Config } from './schema.js';

/** An invalid configuration; each problem is "path: message", e.g. "nodes[1].url: expected an http(s) URL". */
export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  constructor(readonly problems: string[], readonly source: string) {
    super(`invalid configuration in ${source}:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

/** Reads, validates and freezes a YAML config file. Relative file paths inside it are taken from the file's folder. */
export function loadConfigFile(file: string, env: Env = process.env): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([`cannot read the file: ${(err as Error).message}`], file);
  }
  return parseConfigText(text, { source: file, baseDir: dirname(resolve(file)), env });
}

export function parseConfigText(text: string, opts: { source?: string; baseDir?: string; env?: Env } = {}): Config {
  const source = opts.source ?? '<config>';
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(doc.errors.map((e) => `YAML: ${e.message.split('\n')[0]}`), source);
  }
  return validateConfig(doc.toJS(), { ...opts, source });
}

export function validateConfig(raw: unknown, opts: { source?: string; baseDir?: string; env?: Env } = {}): Config {
  const source = opts.source ?? '<config>';
  const problems: string[] = [];
  const substituted = substituteEnv(raw, [], opts.env ?? process.env, problems);
  if (problems.length > 0) throw new ConfigError(problems, source);
  const result = configSchema.safeParse(substituted ?? {}, { reportInput: true });
  if (!result.success) throw new ConfigError(formatIssues(result.error.issues), source);
  const cfg = result.data;
  const base = opts.baseDir ?? process.cwd();
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  if (cfg.listen.tls) {
    cfg.listen.tls.cert = abs(cfg.listen.tls.cert);
    cfg.listen.tls.key = abs(cfg.listen.tls.key);
  }
  if (cfg.token.rootCert !== undefined) cfg.token.rootCert = abs(cfg.token.rootCert);
  for (const node of cfg.nodes) if (node.ca !== undefined) node.ca = abs(node.ca);
  if (cfg.cache.dir !== undefined) cfg.cache.dir = abs(cfg.cache.dir);
  if (cfg.coalesce.dir !== undefined) cfg.coalesce.dir = abs(cfg.coalesce.dir);
  const publicUrl = (cfg.publicUrl ?? defaultPublicUrl(cfg)).replace(/\/+$/, '');
  return deepFreeze({ ...cfg, publicUrl });
}

function defaultPublicUrl(cfg: { listen: { address: string; port: number; tls?: unknown } }): string {
  const host = cfg.listen.address === '0.0.0.0' || cfg.listen.address === '::' ? '127.0.0.1' : cfg.listen.address;
  const h = host.includes(':') ? `[${host}]` : host;
  return `${cfg.listen.tls ? 'https' : 'http'}://${h}:${cfg.listen.port}`;
}

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** Replaces ${VAR} and ${VAR:-default} in string values, so secrets can stay out of the file. */
function substituteEnv(value: unknown, path: (string | number)[], env: Env, problems: string[]): unknown {
  if (typeof value === 'string') {
    return value.replace(ENV_REF, (_m, name: string, fallback: string | undefined) => {
      const v = env[name];
      if (v !== undefined && v !== '') return v;
      if (fallback !== undefined) return fallback;
      problems.push(`${formatPath(path)}: environment variable ${name} is not set`);
      return '';
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => substituteEnv(v, [...path, i], env, problems));
  if (value !== null && typeof value === 'object') {
    // Own properties even for a key named "__proto__": assigned, it would set the prototype, and
    // a section written under it would pass as inherited values instead of an unknown key.
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substituteEnv(v, [...path, k], env, problems)]));
  }
  return value;
}

function formatIssues(issues: z.core.$ZodIssue[]): string[] {
  const out: string[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push(`${formatPath([...issue.path, key])}: unknown key`);
    } else if (issue.code === 'invalid_type' && issue.input === undefined) {
      out.push(`${formatPath(issue.path)}: required`);
    } else {
      out.push(`${formatPath(issue.path)}: ${issue.message}`);
    }
  }
  return out;
}

export function formatPath(path: readonly PropertyKey[]): string {
  let s = '';
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : s === '' ? String(p) : `.${String(p)}`;
  return s === '' ? '(top level)' : s;
}

export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
