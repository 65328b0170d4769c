/**
 * The long-poll on `api/changes`: one request waits at the server until the store's version
 * moves (or ~25 s pass); the sidebar re-reads the state only when it did.
 */
import { ApiError } from './api';

/** What the poller needs from the API. */
export interface IChangesSource {
  changes(since: number, signal?: AbortSignal): Promise<{ version: number }>;
}

/** Options of the poller; the delays are parameters so tests need not wait. */
export interface IPollOptions {
  /** First wait after a failed request, in ms; doubled up to `maxBackoffMs`. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Called with the new version each time it moved. */
  onChange: (version: number) => void;
  /** Called with each failure (the poller keeps trying) and with null when it works again. */
  onError?: (error: ApiError | null) => void;
  /** setTimeout, replaceable in tests. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise(resolve => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}

/** Keeps one long-poll open, reconnecting with a capped exponential backoff after failures. */
export class ChangesPoller {
  private controller: AbortController | null = null;
  private running: Promise<void> | null = null;
  private failures = 0;

  constructor(
    private readonly source: IChangesSource,
    private readonly options: IPollOptions
  ) {}

  /** The version last seen (-1 before the first answer). */
  version = -1;

  get isRunning(): boolean {
    return this.controller !== null;
  }

  /** Start polling from `since` (the version of the state already shown). */
  start(since: number): void {
    if (this.controller) {
      return;
    }
    this.version = since;
    const controller = new AbortController();
    this.controller = controller;
    this.running = this.loop(controller.signal);
  }

  /** Stop polling and abort the open request; resolves when the loop has ended. */
  async stop(): Promise<void> {
    const controller = this.controller;
    this.controller = null;
    controller?.abort();
    await this.running;
    this.running = null;
  }

  private async loop(signal: AbortSignal): Promise<void> {
    const sleep = this.options.sleep ?? abortableSleep;
    while (!signal.aborted) {
      try {
        const answer = await this.source.changes(this.version, signal);
        if (this.failures > 0) {
          this.failures = 0;
          this.options.onError?.(null);
        }
        if (signal.aborted) {
          return;
        }
        if (answer.version !== this.version) {
          this.version = answer.version;
          this.options.onChange(answer.version);
        }
      } catch (reason) {
        if (signal.aborted) {
          return;
        }
        this.failures += 1;
        const error =
          reason instanceof ApiError
            ? reason
            : new ApiError(0, {
                type: 'NetworkError',
                message: String(reason),
                what_failed: 'waiting for changes',
                provider_said: null,
                what_to_change: null
              });
        this.options.onError?.(error);
        await sleep(this.backoff(), signal);
      }
    }
  }

  /** The wait before the next try after `failures` failures in a row. */
  backoff(): number {
    const first = this.options.backoffMs ?? 1000;
    const cap = this.options.maxBackoffMs ?? 30000;
    return Math.min(cap, first * 2 ** Math.max(0, this.failures - 1));
  }
}
