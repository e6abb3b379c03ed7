import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../config/load.js';
import type { Config, NodeConfig } from '../config/schema.js';

/**
 * What every undici pool that talks to one node passes as its `connect` option: the node's private
 * CA bundle, when `nodes[].ca` is set. It replaces the public roots for that node only. Nothing here
 * ever turns certificate verification off.
 */
export interface NodeTlsOptions {
  ca: Buffer;
}

/** The node's TLS options, or undefined when it uses the public roots (or plain HTTP). */
export function nodeTlsOptions(node: Pick<NodeConfig, 'ca'>): NodeTlsOptions | undefined {
  return node.ca === undefined ? undefined : { ca: readCaBundle(node.ca) };
}

/** Checks every `nodes[i].ca` before anything starts, so a bad file stops start-up naming its field. */
export function checkNodeCas(config: Pick<Config, 'nodes'>): void {
  const problems: string[] = [];
  config.nodes.forEach((node, i) => {
    if (node.ca === undefined) return;
    try {
      readCaBundle(node.ca);
    } catch (err) {
      problems.push(`nodes[${i}].ca: cannot use ${node.ca}: ${(err as Error).message}`);
    }
  });
  if (problems.length > 0) throw new ConfigError(problems, 'nodes[].ca');
}

/**
 * Reads a PEM bundle and parses each certificate in it: Node's TLS takes a file without any
 * certificate (or with a broken one) silently, and every connection would then fail verification.
 */
function readCaBundle(file: string): Buffer {
  const pem = readFileSync(file);
  const blocks = pem.toString('latin1').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new Error('no PEM certificate (-----BEGIN CERTIFICATE-----) in it');
  blocks.forEach((block, i) => {
    try {
      new X509Certificate(block);
    } catch (err) {
      throw new Error(`certificate ${i + 1} of ${blocks.length} does not parse: ${(err as Error).message}`);
    }
  });
  return pem;
}
