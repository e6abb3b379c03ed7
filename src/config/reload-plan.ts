import { isDeepStrictEqual } from 'node:util';
import { deepFreeze, formatPath } from './load.js';
import type { Config } from './schema.js';

/** What a config reload changes, and what it cannot change without a restart. */
export interface ReloadPlan {
  /** Node names new in the file, gone from it, and kept with a new weight, URL or CA. */
  nodes: { added: string[]; removed: string[]; changed: string[] };
  /** Settings that changed and take effect now (field paths, e.g. "health.interval"). */
  applied: string[];
  /** Settings that changed but only take effect after a restart; the old values stay in force. */
  restartNeeded: string[];
  /** The config in force after the reload: the new file, with the old value of every restart-needed setting. */
  effective: Config;
}

/**
 * Compares the config in force with a newly loaded one (both validated). `live` lists the settings
 * a running harbor-lb applies, as path prefixes (app/reload.ts derives it from the parts that
 * apply them); every other change waits for a restart.
 */
export function planReload(current: Config, next: Config, live: readonly string[]): ReloadPlan {
  const changed = changedPaths(current, next, []);
  const applied: string[] = [];
  const restart: PropertyKey[][] = [];
  for (const path of changed) {
    const text = formatPath(path);
    const isLive = live.some((p) => text === p || text.startsWith(`${p}.`) || text.startsWith(`${p}[`)) && !needsRestartAnyway(path, current, next);
    if (isLive) applied.push(text);
    else restart.push(path);
  }
  const effective = structuredClone(next) as Config;
  for (const path of restart) setPath(effective, path, getPath(current, path));
  const before = new Map(current.nodes.map((n) => [n.name, n]));
  const after = new Map(next.nodes.map((n) => [n.name, n]));
  return {
    nodes: {
      added: next.nodes.filter((n) => !before.has(n.name)).map((n) => n.name),
      removed: current.nodes.filter((n) => !after.has(n.name)).map((n) => n.name),
      changed: next.nodes.filter((n) => before.has(n.name) && !isDeepStrictEqual(before.get(n.name), n)).map((n) => n.name),
    },
    applied,
    restartNeeded: restart.map(formatPath),
    effective: deepFreeze(effective),
  };
}

/**
 * Live sections with parts that are not: turning TLS on or off changes what the port speaks, and
 * stickiness switched on or off changes what the request path is built with.
 */
function needsRestartAnyway(path: PropertyKey[], current: Config, next: Config): boolean {
  if (path[0] === 'listen' && path[1] === 'tls') return (current.listen.tls === undefined) !== (next.listen.tls === undefined);
  if (path[0] === 'sticky' && path[1] === 'keys') return current.sticky.keys.length === 0 || next.sticky.keys.length === 0;
  if (path[0] === 'token' && path[1] === 'rootCert') return (current.token.rootCert === undefined) !== (next.token.rootCert === undefined);
  return false;
}

/** Leaf paths (arrays count as one value, except the node list, compared per node) that differ. */
function changedPaths(a: unknown, b: unknown, path: PropertyKey[]): PropertyKey[][] {
  if (path.length === 1 && path[0] === 'nodes') return isDeepStrictEqual(a, b) ? [] : [path];
  if (isPlainObject(a) && isPlainObject(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    return [...keys].flatMap((k) => changedPaths(a[k], b[k], [...path, k]));
  }
  return isDeepStrictEqual(a, b) ? [] : [path];
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function getPath(obj: unknown, path: PropertyKey[]): unknown {
  let v = obj as Record<PropertyKey, unknown> | undefined;
  for (const k of path) v = v?.[k] as Record<PropertyKey, unknown> | undefined;
  return v;
}

function setPath(obj: unknown, path: PropertyKey[], value: unknown): void {
  let v = obj as Record<PropertyKey, unknown>;
  for (const k of path.slice(0, -1)) {
    if (!isPlainObject(v[k])) v[k] = {};
    v = v[k] as Record<PropertyKey, unknown>;
  }
  const last = path[path.length - 1]!;
  if (value === undefined) delete v[last];
  else v[last] = structuredClone(value);
}
