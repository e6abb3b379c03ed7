import { ConfigError } from './load.js';
import { planReload, type ReloadPlan } from './reload-plan.js';
import type { Config } from './schema.js';
import type { Logger } from '../log/loggers.js';
import type { Clock } from '../util/clock.js';

/** What a reload did: applied (with what changed and what waits for a restart), or refused with why. */
export type ReloadResult =
  | ({ ok: true; generation: number } & Pick<ReloadPlan, 'nodes' | 'applied' | 'restartNeeded'>)
  | { ok: false; generation: number; problems: string[] };

/** The config state `/-/status` shows. */
export interface ConfigStatus {
  /** 1 at start, +1 per applied reload. */
  generation: number;
  loadedAt: string;
  /** Changed settings still waiting for a restart (their old values are in force). */
  restartNeeded: string[];
  lastReload: { at: string; ok: boolean; problems?: string[] } | null;
}

/**
 * The config in force and its reloads. A reload is planned against the current config, checked
 * by `prepare` (files it names must be usable) before anything changes, then applied by `apply`;
 * a config that fails validation or preparation is refused whole and the old one stays.
 */
export class LiveConfig {
  #current: Config;
  #generation = 1;
  #loadedAt: number;
  #restartNeeded: string[] = [];
  #last: ConfigStatus['lastReload'] = null;

  constructor(
    initial: Config,
    private readonly clock: Clock,
    private readonly logger: Logger,
    /** The settings taken live, as path prefixes (see planReload). */
    private readonly live: readonly string[],
  ) {
    this.#current = initial;
    this.#loadedAt = clock.now();
  }

  get current(): Config {
    return this.#current;
  }

  /**
   * Loads with `load` (which throws a ConfigError for an invalid file), then applies. Never
   * throws: the outcome is returned and logged as one line.
   */
  reload(load: () => Config, steps: { prepare(plan: ReloadPlan): void; apply(plan: ReloadPlan): void }): ReloadResult {
    const at = this.clock.now();
    let plan: ReloadPlan;
    try {
      plan = planReload(this.#current, load(), this.live);
      steps.prepare(plan);
    } catch (err) {
      const problems = err instanceof ConfigError ? err.problems : [(err as Error).message];
      this.#last = { at: new Date(at).toISOString(), ok: false, problems };
      this.logger.error(
        { event: 'config_reload_failed', generation: this.#generation, problems },
        `config reload refused, generation ${this.#generation} stays in force: ${problems.join('; ')}`,
      );
      return { ok: false, generation: this.#generation, problems };
    }
    try {
      steps.apply(plan);
    } catch (err) {
      // prepare() checks all that can fail, so this is a bug of ours; the process must live on.
      // What was applied holds, so the next reload is planned against the new file.
      this.logger.error({ event: 'config_reload_failed', generation: this.#generation + 1, err }, `config reload partly applied: ${(err as Error).message}`);
    }
    this.#current = plan.effective;
    this.#generation++;
    this.#loadedAt = at;
    this.#restartNeeded = plan.restartNeeded;
    this.#last = { at: new Date(at).toISOString(), ok: true };
    const { nodes, applied, restartNeeded } = plan;
    const parts = [
      nodes.added.length > 0 ? `added ${nodes.added.join(', ')}` : '',
      nodes.removed.length > 0 ? `removing ${nodes.removed.join(', ')} (draining)` : '',
      nodes.changed.length > 0 ? `changed ${nodes.changed.join(', ')}` : '',
      applied.length > 0 ? `applied ${applied.join(', ')}` : 'no change',
      restartNeeded.length > 0 ? `NOT applied until a restart: ${restartNeeded.join(', ')}` : '',
    ].filter((p) => p !== '');
    this.logger[restartNeeded.length > 0 ? 'warn' : 'info'](
      { event: 'config_reloaded', generation: this.#generation, added: nodes.added, removed: nodes.removed, changed: nodes.changed, applied, restartNeeded },
      `config reloaded, generation ${this.#generation}: ${parts.join('; ')}`,
    );
    return { ok: true, generation: this.#generation, nodes, applied, restartNeeded };
  }

  status(): ConfigStatus {
    return { generation: this.#generation, loadedAt: new Date(this.#loadedAt).toISOString(), restartNeeded: this.#restartNeeded, lastReload: this.#last };
  }
}
