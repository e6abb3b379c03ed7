/** A source of uniform numbers in [0, 1); injected so tests can script choices. */
export type Random = () => number;
