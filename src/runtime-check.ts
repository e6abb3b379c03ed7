/**
 * Imported first by the CLI: on a Node.js older than the floor, harbor-lb stops before anything
 * else is loaded, with one line that names both versions. Node 20 reached its end of life on
 * 2026-04-30, and a program that parses untrusted HTTP for a living needs the security fixes.
 */
export const MIN_NODE_MAJOR = 24;

/** The problem with running on `version` (process.version), or undefined when it is supported. */
export function runtimeProblem(version: string): string | undefined {
  const major = Number(/^v?(\d+)\./.exec(version)?.[1]);
  if (Number.isInteger(major) && major >= MIN_NODE_MAJOR) return undefined;
  return `harbor-lb needs Node.js ${MIN_NODE_MAJOR} or later (a supported LTS line); this is Node.js ${version}. Install Node.js ${MIN_NODE_MAJOR}, or run the container image.`;
}

const problem = runtimeProblem(process.version);
if (problem !== undefined) {
  process.stderr.write(`${problem}\n`);
  process.exit(2);
}
