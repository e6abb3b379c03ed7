/**
 * What kind of traffic a request is, as Harbor's own nginx tells them apart: the token service,
 * the registry API, blob uploads, the UI and core API, anything else. Decides affinity, retries
 * and what is inspected (proxy/classify.ts reads it off a path).
 */
export type Route = 'token' | 'v2' | 'upload' | 'ui' | 'other';

/** Every route, in the order status, metrics and docs list them; `other` last (the metric labels' catch-all). */
export const ROUTES = ['token', 'v2', 'upload', 'ui', 'other'] as const satisfies readonly Route[];
