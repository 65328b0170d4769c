/**
 * The REST API of the server extension (docs/rest-api.md): its answers' types and one
 * client that sends Jupyter's auth and XSRF through ServerConnection.
 */

/** How the redirect comes back to Jupyter for a provider. */
export type Way = 'jupyter' | 'hub' | 'loopback' | 'device' | 'paste' | 'none';

/** A token's state as the server computes it. */
export type TokenStatus =
  | 'authorized'
  | 'expires_soon'
  | 'expired'
  | 'refresh_expiring'
  | 'revoked'
  | 'error';

/** A typed error in the errors.py form: what failed, what the provider said, what to change. */
export interface IApiErrorBody {
  type: string;
  message: string;
  what_failed: string;
  provider_said: string | null;
  what_to_change: string | null;
}

/** A provider the server knows (declared, or registered by a kernel's setup()). */
export interface IProvider {
  alias: string;
  title: string;
  source: 'server' | 'hub' | 'kernel' | 'login';
  redirect_uri: string | null;
  way: Way;
  way_text: string;
  scopes: string[];
  issuer: string | null;
  can_authorize: boolean;
  can_refresh: boolean;
  can_revoke: boolean;
  why_not: string | null;
}

/** A stored token, masked. */
export interface IToken {
  alias: string;
  user: string;
  status: TokenStatus;
  expires_at: number | null;
  obtained_at: number | null;
  refreshed_at: number | null;
  scopes_granted: string[];
  scopes_requested: string[];
  masked: string;
  has_refresh_token: boolean;
  refresh_expires_at: number | null;
  bound: string | null;
  has_id_token: boolean;
  error: IApiErrorBody | null;
}

/** GET api/state. */
export interface IState {
  version: number;
  now: number;
  user: string;
  providers: IProvider[];
  tokens: IToken[];
}

/** One row of the doctor's report. */
export interface ICheckRow {
  check: string;
  status: 'ok' | 'warn' | 'fail' | 'skip';
  detail: string;
  todo: string;
}

/** POST api/check/<alias>. */
export interface ICheckReport {
  ok: boolean;
  rows: ICheckRow[];
  summary: string;
}

/** An answer of the API that is not a 2xx, with its typed body when the server sent one. */
export class ApiError extends Error {
  readonly status: number;
  readonly body: IApiErrorBody;

  constructor(status: number, body: IApiErrorBody) {
    super(body.message);
    this.name = 'ApiError';
    this.status = status;
    this.body = body;
  }
}

/** Sends one request below `{base_url}chat-oauth2/api/`; the real one uses ServerConnection. */
export type Fetcher = (path: string, init: RequestInit) => Promise<Response>;

/** Read a typed error out of a failed answer, or describe the answer when it has none. */
export async function errorFromResponse(response: Response): Promise<ApiError> {
  let body: unknown = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const inner = (body as { error?: Partial<IApiErrorBody> } | null)?.error;
  if (inner && typeof inner.message === 'string') {
    return new ApiError(response.status, {
      type: inner.type ?? 'Error',
      message: inner.message,
      what_failed: inner.what_failed ?? inner.message,
      provider_said: inner.provider_said ?? null,
      what_to_change: inner.what_to_change ?? null
    });
  }
  return new ApiError(response.status, {
    type: 'HTTPError',
    message:
      `The server answered ${response.status} ${response.statusText}`.trim(),
    what_failed: `chat-oauth2 API request (HTTP ${response.status})`,
    provider_said: null,
    what_to_change:
      response.status === 404
        ? 'Check that the chat_oauth2_nb server extension is enabled (jupyter server extension list) and restart Jupyter.'
        : response.status === 403
          ? 'Log in to Jupyter again (the session may have expired).'
          : null
  });
}

/** A network failure (server down, connection reset) as the same typed error. */
export function networkError(reason: unknown): ApiError {
  const text = reason instanceof Error ? reason.message : String(reason);
  return new ApiError(0, {
    type: 'NetworkError',
    message: `Could not reach the Jupyter server: ${text}`,
    what_failed: 'chat-oauth2 API request',
    provider_said: null,
    what_to_change:
      'Check that the Jupyter server is still running, then retry.'
  });
}

/** The API's calls, typed. */
export class ApiClient {
  constructor(private readonly fetcher: Fetcher) {}

  /** Send a request; answer the parsed JSON or throw an ApiError. */
  async call<T>(
    path: string,
    method = 'GET',
    signal?: AbortSignal
  ): Promise<T> {
    let response: Response;
    try {
      response = await this.fetcher(path, { method, signal });
    } catch (reason) {
      if ((reason as { name?: string })?.name === 'AbortError') {
        throw reason;
      }
      throw networkError(reason);
    }
    if (!response.ok) {
      throw await errorFromResponse(response);
    }
    return (await response.json()) as T;
  }

  state(): Promise<IState> {
    return this.call<IState>('state');
  }

  changes(since: number, signal?: AbortSignal): Promise<{ version: number }> {
    return this.call(
      `changes?since=${encodeURIComponent(since)}`,
      'GET',
      signal
    );
  }

  authorize(alias: string): Promise<{ start_url: string; expires_in: number }> {
    return this.call(`authorize/${encodeURIComponent(alias)}`, 'POST');
  }

  refresh(alias: string): Promise<{ token: IToken }> {
    return this.call(`refresh/${encodeURIComponent(alias)}`, 'POST');
  }

  revoke(alias: string): Promise<{ revoked: boolean }> {
    return this.call(`revoke/${encodeURIComponent(alias)}`, 'POST');
  }

  claims(alias: string): Promise<{ claims: Record<string, unknown> }> {
    return this.call(`claims/${encodeURIComponent(alias)}`);
  }

  check(alias: string): Promise<ICheckReport> {
    return this.call(`check/${encodeURIComponent(alias)}`, 'POST');
  }
}
