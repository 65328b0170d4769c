import { ApiError, ApiClient, networkError } from '../api';
import { ChangesPoller, IChangesSource } from '../poll';

/** A scripted server: each call takes the next answer (a version, or an error to throw). */
class ScriptedChanges implements IChangesSource {
  calls: number[] = [];
  private waiting: (() => void)[] = [];

  constructor(private readonly script: (number | Error)[]) {}

  async changes(
    since: number,
    signal?: AbortSignal
  ): Promise<{ version: number }> {
    this.calls.push(since);
    const next = this.script.shift();
    if (next === undefined) {
      // Like the server holding the request open: until the poller aborts it.
      await new Promise<void>((_, reject) => {
        signal?.addEventListener('abort', () =>
          reject(Object.assign(new Error('aborted'), { name: 'AbortError' }))
        );
        this.waiting.forEach(resolve => resolve());
      });
    }
    if (next instanceof Error) {
      throw next;
    }
    return { version: next as number };
  }

  /** Resolves once the script ran out (the poller is parked on an open request). */
  parked(): Promise<void> {
    if (this.script.length === 0 && this.calls.length > 0) {
      return Promise.resolve();
    }
    return new Promise(resolve => this.waiting.push(resolve));
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) {
    await Promise.resolve();
  }
}

describe('ChangesPoller', () => {
  it('passes the last version and reports only real moves', async () => {
    const server = new ScriptedChanges([17, 18, 18, 21]);
    const seen: number[] = [];
    const poller = new ChangesPoller(server, { onChange: v => seen.push(v) });
    poller.start(17);
    await server.parked();
    await settle();
    expect(server.calls).toEqual([17, 17, 18, 18, 21]);
    expect(seen).toEqual([18, 21]);
    await poller.stop();
    expect(poller.isRunning).toBe(false);
  });

  it('reconnects after failures with a growing, capped backoff, and says when it is back', async () => {
    const server = new ScriptedChanges([
      networkError(new TypeError('Failed to fetch')),
      new ApiError(502, {
        type: 'HTTPError',
        message: 'Bad gateway',
        what_failed: 'proxy',
        provider_said: null,
        what_to_change: null
      }),
      new Error('reset'),
      new Error('reset'),
      5
    ]);
    const sleeps: number[] = [];
    const errors: (string | null)[] = [];
    const seen: number[] = [];
    const poller = new ChangesPoller(server, {
      backoffMs: 100,
      maxBackoffMs: 300,
      onChange: v => seen.push(v),
      onError: e => errors.push(e ? e.body.type : null),
      sleep: async ms => {
        sleeps.push(ms);
      }
    });
    poller.start(4);
    await server.parked();
    await settle();
    expect(sleeps).toEqual([100, 200, 300, 300]);
    expect(errors).toEqual([
      'NetworkError',
      'HTTPError',
      'NetworkError',
      'NetworkError',
      null
    ]);
    expect(seen).toEqual([5]);
    expect(server.calls.slice(0, 5)).toEqual([4, 4, 4, 4, 4]);
    await poller.stop();
  });

  it('takes a lower version after a server restart as a change', async () => {
    const server = new ScriptedChanges([1]);
    const seen: number[] = [];
    const poller = new ChangesPoller(server, { onChange: v => seen.push(v) });
    poller.start(40);
    await server.parked();
    await settle();
    expect(seen).toEqual([1]);
    await poller.stop();
  });

  it('stops at once, aborting the open request, and reports no error for it', async () => {
    const server = new ScriptedChanges([]);
    const errors: unknown[] = [];
    const poller = new ChangesPoller(server, {
      onChange: () => undefined,
      onError: e => errors.push(e)
    });
    poller.start(3);
    await server.parked();
    await poller.stop();
    expect(errors).toEqual([]);
    expect(server.calls).toEqual([3]);
  });
});

describe('ApiClient', () => {
  it('asks api/changes with the version and aborts with the signal', async () => {
    const requests: { path: string; init: RequestInit }[] = [];
    const client = new ApiClient(async (path, init) => {
      requests.push({ path, init });
      return {
        ok: true,
        status: 200,
        json: async () => ({ version: 9 })
      } as unknown as Response;
    });
    const controller = new AbortController();
    expect(await client.changes(8, controller.signal)).toEqual({ version: 9 });
    expect(requests[0].path).toBe('changes?since=8');
    expect(requests[0].init.signal).toBe(controller.signal);
    await client.revoke('a b');
    expect(requests[1]).toEqual({
      path: 'revoke/a%20b',
      init: { method: 'POST', signal: undefined }
    });
  });

  it('turns a failed fetch into a typed NetworkError', async () => {
    const client = new ApiClient(async () => {
      throw new TypeError('Failed to fetch');
    });
    await expect(client.state()).rejects.toMatchObject({
      status: 0,
      body: { type: 'NetworkError' }
    });
  });
});
