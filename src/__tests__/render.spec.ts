import { ApiError, errorFromResponse, networkError } from '../api';
import { renderError, renderReport } from '../render';
import { absoluteLink } from '../links';

function answer(status: number, body: unknown, statusText = ''): Response {
  return {
    status,
    statusText,
    ok: status >= 200 && status < 300,
    json: async () => {
      if (body === undefined) {
        throw new SyntaxError('Unexpected end of JSON input');
      }
      return body;
    }
  } as unknown as Response;
}

describe('typed errors', () => {
  it("reads the server's typed error", async () => {
    const error = await errorFromResponse(
      answer(404, {
        error: {
          type: 'ConfigError',
          message: "No provider 'demi'",
          what_failed: "looking up the provider 'demi'",
          provider_said: null,
          what_to_change: "Did you mean 'demo'?"
        }
      })
    );
    expect(error).toBeInstanceOf(ApiError);
    expect(error.status).toBe(404);
    expect(error.body.type).toBe('ConfigError');
    expect(error.body.what_to_change).toBe("Did you mean 'demo'?");
  });

  it('describes an answer without a typed body, with a hint for 404', async () => {
    const error = await errorFromResponse(answer(404, undefined, 'Not Found'));
    expect(error.body.type).toBe('HTTPError');
    expect(error.message).toContain('404');
    expect(error.body.what_to_change).toContain('server extension');
  });

  it('renders what failed, what the provider said and what to change', () => {
    const node = renderError(
      new ApiError(502, {
        type: 'TokenError',
        message: 'The provider refused the refresh token',
        what_failed: 'refreshing the token for demo',
        provider_said: 'invalid_grant: token revoked',
        what_to_change: 'Authorize again.'
      })
    );
    expect(node.getAttribute('role')).toBe('alert');
    expect(node.dataset.errorType).toBe('TokenError');
    expect(node.querySelector('.chat-oauth2-error-what')?.textContent).toBe(
      'TokenError: refreshing the token for demo'
    );
    expect(node.querySelector('.chat-oauth2-error-provider')?.textContent).toBe(
      'The provider said: invalid_grant: token revoked'
    );
    expect(node.querySelector('.chat-oauth2-error-todo')?.textContent).toBe(
      'What to change: Authorize again.'
    );
  });

  it('leaves out the parts the error does not have', () => {
    const node = renderError(networkError(new TypeError('Failed to fetch')));
    expect(node.querySelector('.chat-oauth2-error-provider')).toBeNull();
    expect(node.textContent).toContain('Failed to fetch');
    expect(node.textContent).toContain('still running');
  });

  it('shows markup in a message as text, never as HTML', () => {
    const node = renderError(new Error('<img src=x onerror=alert(1)>'));
    expect(node.querySelector('img')).toBeNull();
    expect(node.textContent).toContain('<img src=x onerror=alert(1)>');
  });
});

describe("the doctor's report", () => {
  it('is a table with failures first and what to do', () => {
    const node = renderReport({
      ok: false,
      summary: '1 failure, 1 warning',
      rows: [
        { check: 'discovery', status: 'ok', detail: 'found', todo: '' },
        {
          check: 'redirect URI',
          status: 'warn',
          detail: 'http on a public host',
          todo: 'Use https.'
        },
        {
          check: 'credentials',
          status: 'fail',
          detail: 'invalid_client',
          todo: 'Check the client secret.'
        }
      ]
    });
    const rows = Array.from(node.querySelectorAll('tbody tr')) as HTMLElement[];
    expect(rows.map(r => r.dataset.status)).toEqual(['fail', 'warn', 'ok']);
    expect(rows[0].textContent).toContain('Check the client secret.');
    expect(node.dataset.ok).toBe('false');
    expect(node.querySelector('.chat-oauth2-report-summary')?.textContent).toBe(
      '1 failure, 1 warning'
    );
  });
});

describe('start links', () => {
  const origin = 'http://127.0.0.1:8888';

  it('keeps an absolute link', () => {
    expect(
      absoluteLink(
        'https://hub.example/user/a/chat-oauth2/start/x',
        '/user/a/',
        origin
      )
    ).toBe('https://hub.example/user/a/chat-oauth2/start/x');
  });

  it('puts an absolute path on this origin', () => {
    expect(
      absoluteLink('/user/a/chat-oauth2/start/x', '/user/a/', origin)
    ).toBe('http://127.0.0.1:8888/user/a/chat-oauth2/start/x');
  });

  it('puts a base-relative link under the base URL', () => {
    expect(absoluteLink('chat-oauth2/start/x', '/user/a/', origin)).toBe(
      'http://127.0.0.1:8888/user/a/chat-oauth2/start/x'
    );
    expect(
      absoluteLink('chat-oauth2/start/x', 'http://127.0.0.1:8888/jh/', origin)
    ).toBe('http://127.0.0.1:8888/jh/chat-oauth2/start/x');
  });
});
