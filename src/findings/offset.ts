/** "12 s ahead of" / "3 s behind": how a clock offset reads in a finding. */
export function describeOffset(offsetMs: number): string {
  const seconds = Math.round(offsetMs / 1000);
  return `${Math.abs(seconds)} s ${seconds > 0 ? 'ahead of' : 'behind'}`;
}
