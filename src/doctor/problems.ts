import { describeFinding, type Finding, type FindingCode, type FindingFacts } from '../findings/catalogue.js';

/** A finding of doctor's, about a node or (node null) the cluster as a whole. */
export interface Problem extends Finding {
  node: string | null;
}

/** What a doctor run has found so far; worded by the findings catalogue, as harbor-lb's flags are. */
export class Problems {
  readonly list: Problem[] = [];

  add<C extends FindingCode>(node: string | null, code: C, facts: FindingFacts[C]): Problem {
    const p = { node, ...describeFinding(code, facts) };
    this.list.push(p);
    return p;
  }

  find(node: string, code: FindingCode): Problem | undefined {
    return this.list.find((p) => p.node === node && p.code === code);
  }
}
