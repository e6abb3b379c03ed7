const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * The longest duration any key accepts. Node's timers fire at once past 2^31-1 ms (~24.8 days),
 * so a longer value would silently mean "now"; no setting here needs more than a day.
 */
export const MAX_DURATION_MS = 24 * 3_600_000;

/** Parses "500ms", "5s", "1m30s", "2h" into milliseconds; undefined when the text is not a duration. */
export function parseDuration(text: string): number | undefined {
  if (text.length === 0) return undefined;
  // Sticky regexes carry lastIndex: one per call, so nothing is shared between calls.
  const part = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;
  let total = 0;
  while (part.lastIndex < text.length) {
    const start = part.lastIndex;
    const m = part.exec(text);
    if (m === null || m.index !== start) return undefined;
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
  }
  return Math.round(total);
}
