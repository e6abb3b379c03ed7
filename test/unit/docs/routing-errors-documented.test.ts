import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { NODE_FAILURE_CODES } from '../../../src/nodes/node-failure.js';
import { ROUTING_ERROR_CODES } from '../../../src/proxy/routing-error.js';

/** The first column of each row of routing-log.md's "error values" table. */
function documentedCodes(): Set<string> {
  const doc = readFileSync(new URL('../../../../docs/routing-log.md', import.meta.url), 'utf8');
  const table = doc.slice(doc.indexOf('### `error` values'), doc.indexOf('## Event lines'));
  const codes = new Set<string>();
  for (const line of table.split('\n')) {
    if (!line.startsWith('| `')) continue;
    const first = line.split('|')[1]!;
    for (const m of first.matchAll(/`([A-Z][A-Z0-9_]+)(?:[:`])/g)) codes.add(m[1]!);
  }
  return codes;
}

// Issue 19: the routing line's error was a free string built in about 15 places.
it('every code the routing line\'s error can carry has its row in docs/routing-log.md, and every row a code', () => {
  const documented = documentedCodes();
  const codes = [...ROUTING_ERROR_CODES, ...NODE_FAILURE_CODES];
  assert.deepEqual(codes.filter((c) => !documented.has(c)), [], 'codes without a row');
  const tls = /^(?:ERR_TLS_|ERR_SSL_|ERR_OSSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|HOSTNAME_)/;
  assert.deepEqual([...documented].filter((c) => !(codes as readonly string[]).includes(c) && !tls.test(c) && !c.startsWith('HPE_')), [], 'rows of no code');
});
