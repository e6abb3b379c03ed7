import { describeOffset } from './offset.js';

/**
 * Everything harbor-lb can find wrong with a cluster, each with one severity, one message and one
 * fix, shared by the flags a running harbor-lb raises and by `harbor-lb doctor`, so an operator
 * reads the same words in both. Codes are a contract (tools outside the repo read them): new
 * findings get new codes, a code never changes meaning.
 */
export interface FindingFacts {
  /** The node's tokens are signed by a key token.rootCert does not hold (or the signature does not match it). */
  TOKEN_SIGNED_WITH_FOREIGN_KEY: { node: string; kid?: string; trustedKids: readonly string[] };
  /** The node's tokens verify, but their claims do not (issuer, audience, or time claims without iat/nbf). */
  TOKEN_CLAIMS_REJECTED: { node: string; detail: string; timeClaims: boolean };
  /** The node's registry refuses tokens signed with the cluster key. */
  REGISTRY_REJECTS_CLUSTER_TOKEN: { node: string; kid?: string };
  /** The node's 401 names the node itself as token realm. */
  REALM_BYPASSES_PROXY: { node: string; realm: string; publicUrl: string };
  /** The node's realm names the public host with the other scheme. */
  REALM_SCHEME_MISMATCH: { node: string; realm: string; publicUrl: string };
  /** The node's clock is off; `offsetMs` + means ahead; `tokensAway`: past the registries' leeway. */
  NODE_CLOCK_SKEW: { node: string; offsetMs?: number; tokensAway: boolean; detail?: string; observer: 'harbor-lb' | 'this machine' };
  /** The node's Harbor core signs CSRF cookies with another key than the others. */
  CSRF_KEY_DIFFERS: { node: string; differsFrom: readonly string[] };
  /** An upload begun on `startedOn` cannot continue on the node. */
  HTTP_SECRET_DIFFERS: { node: string; startedOn: string };
  /** doctor: the node's health check fails. */
  NODE_UNHEALTHY: { node: string; detail: string };
  /** doctor: the node cannot be reached. */
  NODE_UNREACHABLE: { node: string; url: string; detail: string };
  /** doctor: token.rootCert is not set. */
  NO_ROOT_CERT: Record<string, never>;
  /** No node's token verifies against token.rootCert. */
  ROOT_CERT_SUSPECT: Record<string, never>;
  /** doctor: doctor.credentials got no push token. */
  DOCTOR_CREDENTIALS_REJECTED: { node: string; status: number; username: string; repository: string };
}

export type FindingCode = keyof FindingFacts;

/** What an operator reads of a finding. */
export interface Finding {
  code: FindingCode;
  /** `error`: something clients hit; `warning`: worked around by harbor-lb, or harmless so far. */
  severity: 'error' | 'warning';
  message: string;
  fix: string;
}

interface Entry<F> {
  severity: Finding['severity'] | ((f: F) => Finding['severity']);
  message(f: F): string;
  fix(f: F): string;
}

type Catalogue = { [C in FindingCode]: Entry<FindingFacts[C]> };

/** The fix for a node whose key pair is not the cluster's: its token signer and its registry's trust. */
const FIX_KEYS = (node: string) =>
  `copy private_key.pem and root.crt from a good node to ${node} (Harbor: common/config/core/private_key.pem and common/config/registry/root.crt, or the values in harbor.yml's secret folder), then restart Harbor on it`;

const CATALOGUE: Catalogue = {
  TOKEN_SIGNED_WITH_FOREIGN_KEY: {
    severity: 'error',
    message: (f) => `${f.node} issues tokens signed with ${f.kid ? `key ${f.kid}` : 'an unknown key'}; the cluster's root.crt holds ${f.trustedKids.join(', ')}`,
    fix: (f) => FIX_KEYS(f.node),
  },
  TOKEN_CLAIMS_REJECTED: {
    severity: 'error',
    message: (f) => `${f.node} issues tokens the cluster's registries reject: ${f.detail}`,
    fix: (f) => (f.timeClaims ? `sync ${f.node}'s clock (NTP)` : `check token issuer and service settings on ${f.node}`),
  },
  REGISTRY_REJECTS_CLUSTER_TOKEN: {
    severity: 'error',
    message: (f) => `${f.node}'s registry rejects tokens signed with the cluster key${f.kid ? ` ${f.kid}` : ''} (answers 401 invalid_token)`,
    fix: (f) => `the registry on ${f.node} trusts another root.crt: ${FIX_KEYS(f.node)}`,
  },
  REALM_BYPASSES_PROXY: {
    severity: 'warning',
    message: (f) => `${f.node} advertises the token realm ${f.realm}, which points at the node itself, not at the public URL (harbor-lb rewrites it meanwhile)`,
    fix: (f) => `set hostname / external_url in ${f.node}'s harbor.yml to the public name ${new URL(f.publicUrl).host} (the domain name, not the node's IP) and run ./prepare`,
  },
  REALM_SCHEME_MISMATCH: {
    severity: 'warning',
    message: (f) =>
      `${f.node} advertises the token realm ${f.realm}, but clients use ${new URL(f.publicUrl).protocol.slice(0, -1)} (harbor-lb rewrites it meanwhile; clients that follow it directly fail: docker says "server gave HTTP response to HTTPS client")`,
    fix: (f) => `set external_url in ${f.node}'s harbor.yml to ${new URL(f.publicUrl).origin} (the scheme clients use) and run ./prepare`,
  },
  NODE_CLOCK_SKEW: {
    // Past the registries' leeway its tokens are refused elsewhere; before that, a warning.
    severity: (f) => (f.tokensAway ? 'error' : 'warning'),
    message: (f) =>
      f.offsetMs === undefined
        ? `${f.node} issues tokens that are ${f.detail ?? 'not valid yet, or expired'}`
        : `${f.node}'s clock is ${describeOffset(f.offsetMs)} ${f.observer === 'harbor-lb' ? "harbor-lb's" : "this machine's"}` +
          (f.tokensAway
            ? f.observer === 'harbor-lb'
              ? `: past the registries' leeway, its tokens are rejected elsewhere, so token requests go to other nodes`
              : ': its tokens are rejected as not valid yet (or expired) by the other nodes'
            : ''),
    fix: (f) => `sync ${f.node}'s clock (NTP: chrony or systemd-timesyncd); if every node shows the same offset, ${f.observer === 'harbor-lb' ? "harbor-lb's" : "this machine's"} own clock is the one off`,
  },
  CSRF_KEY_DIFFERS: {
    severity: 'error',
    message: (f) =>
      `${f.node}'s CSRF key differs from ${f.differsFrom.join(', ')}'s: a UI session that changes node fails with 403 "CSRF token invalid"; harbor-lb keeps each browser on the node that minted its CSRF cookie meanwhile`,
    fix: () =>
      'give every node the same CSRF_KEY (exactly 32 characters; the installer writes one per node into common/config/core/env, harbor-helm shares one Secret) and restart Harbor core on the nodes that differ',
  },
  HTTP_SECRET_DIFFERS: {
    severity: 'error',
    message: (f) => `an upload started on ${f.startedOn} cannot continue on ${f.node}: their registries' http.secret differ`,
    fix: () => 'give every node the same registry http.secret (REGISTRY_HTTP_SECRET); harbor-lb keeps uploads on one node meanwhile',
  },
  NODE_UNHEALTHY: {
    severity: 'error',
    message: (f) => `${f.node} health: ${f.detail}`,
    fix: (f) => `look at the failing component on ${f.node}`,
  },
  NODE_UNREACHABLE: {
    severity: 'error',
    message: (f) => `${f.node} (${f.url}) cannot be reached: ${f.detail}`,
    fix: (f) => `is Harbor running on ${f.node}, and is ${f.url} right?`,
  },
  NO_ROOT_CERT: {
    severity: 'warning',
    message: () => 'token.rootCert is not set: tokens cannot be checked',
    fix: () => "set token.rootCert to the cluster's root.crt",
  },
  ROOT_CERT_SUSPECT: {
    severity: 'error',
    message: () => "no node's token verifies against token.rootCert",
    fix: () => 'token.rootCert is likelier wrong than every node: copy root.crt from a Harbor node',
  },
  DOCTOR_CREDENTIALS_REJECTED: {
    severity: 'warning',
    message: (f) => `doctor.credentials got no push token from ${f.node} (${f.status})`,
    fix: (f) => `give ${f.username} push rights on ${f.repository}`,
  },
};

/** The finding `code` says about these facts: its severity, message and fix. */
export function describeFinding<C extends FindingCode>(code: C, facts: FindingFacts[C]): Finding {
  const e = CATALOGUE[code] as Entry<FindingFacts[C]>;
  return { code, severity: typeof e.severity === 'function' ? e.severity(facts) : e.severity, message: e.message(facts), fix: e.fix(facts) };
}
