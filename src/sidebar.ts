/**
 * The left-area panel: every provider the server knows and every token stored for this
 * Jupyter user, with Authorize / Refresh / Revoke / Check configuration. It reads
 * `api/state` once, then again whenever the `api/changes` long-poll says the store moved.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import {
  ApiClient,
  ApiError,
  ICheckReport,
  IProvider,
  IState,
  IToken
} from './api';
import { copyText } from './clipboard';
import { absoluteLink } from './links';
import { countdown, scopeDiff, tokenStatus } from './format';
import { ChangesPoller } from './poll';
import { h, renderError, renderReport } from './render';

/** The sidebar's settings (schema/plugin.json). */
export interface ISidebarSettings {
  expiresSoonSeconds: number;
  confirmRevoke: boolean;
}

/** What a card remembers across re-renders: the last outcome, report, claims. */
interface ICardMemory {
  outcome?: { text: string; tone: 'good' | 'bad' | 'neutral' };
  error?: unknown;
  report?: ICheckReport;
  claims?: Record<string, unknown>;
  waiting?: { url: string; until: number; since: number };
  busy?: string;
}

/** The sidebar widget. */
export class OAuth2Sidebar extends Widget {
  private state: IState | null = null;
  /** Browser clock minus server clock when the state arrived, in seconds. */
  private skew = 0;
  private loadError: unknown = null;
  private pollError: unknown = null;
  private readonly memory = new Map<string, ICardMemory>();
  private readonly poller: ChangesPoller;
  private ticker: number | undefined;
  private loading: Promise<void> | null = null;
  private again = false;
  private readonly listNode: HTMLElement;
  private readonly bannerNode: HTMLElement;
  private readonly userNode: HTMLElement;

  constructor(
    private readonly api: ApiClient,
    public settings: ISidebarSettings,
    private readonly baseUrl: string
  ) {
    super();
    this.id = 'chat-oauth2-sidebar';
    this.addClass('chat-oauth2-sidebar');
    this.title.caption = 'OAuth2 providers and tokens';
    const reload = h(
      'button',
      'jp-Button jp-mod-styled chat-oauth2-reload',
      'Reload'
    );
    reload.title = 'Read the providers and tokens again';
    reload.addEventListener('click', () => void this.reload());
    this.userNode = h('span', 'chat-oauth2-user');
    this.bannerNode = h('div', 'chat-oauth2-banner');
    this.listNode = h('div', 'chat-oauth2-list');
    this.node.append(
      h(
        'header',
        'chat-oauth2-header',
        h('h2', 'chat-oauth2-heading', 'OAuth2'),
        this.userNode,
        reload
      ),
      this.bannerNode,
      this.listNode
    );
    this.poller = new ChangesPoller(api, {
      onChange: () => void this.reload(),
      onError: error => {
        this.pollError = error;
        this.renderBanner();
      }
    });
  }

  /** The state last read (for commands and tests). */
  get current(): IState | null {
    return this.state;
  }

  /** Read `api/state` and draw it; the long-poll starts after the first answer. */
  reload(): Promise<void> {
    if (this.loading) {
      // A change arrived while a read was under way: read once more after it.
      this.again = true;
      return this.loading;
    }
    this.loading = (async () => {
      do {
        this.again = false;
        await this.load();
      } while (this.again && !this.isDisposed);
    })().finally(() => {
      this.loading = null;
    });
    return this.loading;
  }

  private async load(): Promise<void> {
    try {
      const state = await this.api.state();
      this.state = state;
      this.skew = Date.now() / 1000 - state.now;
      this.loadError = null;
      if (!this.poller.isRunning) {
        this.poller.start(state.version);
      } else if (state.version > this.poller.version) {
        this.poller.version = state.version;
      }
    } catch (error) {
      this.loadError = error;
    }
    this.render();
  }

  /** Refresh every token that can be refreshed. */
  async refreshAll(): Promise<void> {
    const state = this.state ?? (await this.reload(), this.state);
    if (!state) {
      return;
    }
    const providers = new Map(state.providers.map(p => [p.alias, p]));
    const aliases = new Set(
      state.tokens
        .filter(
          t =>
            t.user === state.user &&
            providers.get(t.alias)?.can_refresh !== false
        )
        .map(t => t.alias)
    );
    await Promise.all([...aliases].map(alias => this.refresh(alias)));
  }

  protected onAfterAttach(): void {
    this.ticker = window.setInterval(() => this.tick(), 1000);
    void this.reload();
  }

  protected onBeforeDetach(): void {
    window.clearInterval(this.ticker);
    this.ticker = undefined;
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    window.clearInterval(this.ticker);
    void this.poller.stop();
    super.dispose();
  }

  private now(): number {
    return Date.now() / 1000 - this.skew;
  }

  private remember(alias: string): ICardMemory {
    let memory = this.memory.get(alias);
    if (!memory) {
      memory = {};
      this.memory.set(alias, memory);
    }
    return memory;
  }

  private renderBanner(): void {
    this.bannerNode.replaceChildren();
    const error = this.loadError ?? this.pollError;
    if (error) {
      this.bannerNode.append(renderError(error));
    }
  }

  /** Draw everything from the state and each card's memory. */
  render(): void {
    this.renderBanner();
    const state = this.state;
    this.listNode.replaceChildren();
    if (!state) {
      return;
    }
    this.userNode.textContent = state.user ? `as ${state.user}` : '';
    const aliases = [
      ...state.providers.map(p => p.alias),
      ...state.tokens
        .map(t => t.alias)
        .filter(a => !state.providers.some(p => p.alias === a))
    ];
    if (aliases.length === 0) {
      this.listNode.append(
        h(
          'p',
          'chat-oauth2-empty',
          'No provider yet. Declare one in the server config (c.ChatOAuth2App.providers) or run client.setup() in a notebook.'
        )
      );
    }
    for (const alias of [...new Set(aliases)]) {
      const provider = state.providers.find(p => p.alias === alias) ?? null;
      const tokens = state.tokens.filter(t => t.alias === alias);
      this.listNode.append(
        this.renderCard(alias, provider, tokens, state.user)
      );
    }
    this.tick();
  }

  private renderCard(
    alias: string,
    provider: IProvider | null,
    tokens: IToken[],
    user: string
  ): HTMLElement {
    const memory = this.remember(alias);
    const card = h('section', 'chat-oauth2-card');
    card.dataset.alias = alias;
    const mine = tokens.find(t => t.user === user) ?? tokens[0] ?? null;
    const title = h(
      'div',
      'chat-oauth2-card-title',
      h('span', 'chat-oauth2-title', provider?.title || alias),
      h('span', 'chat-oauth2-alias', alias)
    );
    if (provider) {
      title.append(
        h(
          'span',
          `chat-oauth2-source chat-oauth2-source-${provider.source}`,
          provider.source
        )
      );
    }
    card.append(title);

    const status = h('div', 'chat-oauth2-status');
    status.dataset.alias = alias;
    card.append(status);
    if (mine) {
      status.dataset.expiresAt = String(mine.expires_at ?? '');
      status.dataset.serverStatus = mine.status;
    } else {
      status.dataset.serverStatus = 'none';
    }

    for (const token of tokens) {
      card.append(this.renderToken(token, tokens.length > 1));
    }
    if (provider) {
      card.append(this.renderProvider(provider));
    }
    card.append(this.renderActions(alias, provider, mine));
    if (provider?.why_not) {
      card.append(h('div', 'chat-oauth2-why-not', provider.why_not));
    }
    if (
      memory.waiting &&
      mine?.status === 'authorized' &&
      (mine.obtained_at ?? 0) >= memory.waiting.since - 5
    ) {
      // The callback landed: the token is newer than the click.
      memory.waiting = undefined;
      memory.outcome = { text: 'Authorized just now.', tone: 'good' };
    }
    if (memory.waiting && memory.waiting.until > Date.now() / 1000) {
      const link = h('a', 'chat-oauth2-start-link', 'the authorization link');
      link.href = memory.waiting.url;
      link.target = '_blank';
      link.rel = 'noopener noreferrer';
      card.append(
        h(
          'div',
          'chat-oauth2-waiting',
          'Waiting for the provider to redirect back… (opened ',
          link,
          ' in a new tab)'
        )
      );
    }
    if (memory.outcome) {
      card.append(
        h(
          'div',
          `chat-oauth2-outcome chat-oauth2-tone-${memory.outcome.tone}`,
          memory.outcome.text
        )
      );
    }
    if (memory.error) {
      card.append(renderError(memory.error));
    }
    if (memory.report) {
      card.append(renderReport(memory.report));
    }
    if (memory.claims) {
      card.append(this.renderClaims(memory.claims));
    }
    return card;
  }

  private renderToken(token: IToken, showUser: boolean): HTMLElement {
    const box = h('div', 'chat-oauth2-token');
    box.dataset.user = token.user;
    if (showUser) {
      box.append(h('div', 'chat-oauth2-token-user', `User: ${token.user}`));
    }
    if (token.masked) {
      box.append(
        h(
          'div',
          'chat-oauth2-masked-line',
          'Token ',
          h('code', 'chat-oauth2-masked', token.masked)
        )
      );
    }
    if (token.status !== 'revoked') {
      const clock = h('span', 'chat-oauth2-countdown');
      clock.dataset.expiresAt = String(token.expires_at ?? '');
      box.append(h('div', 'chat-oauth2-expiry', clock));
    }
    const { missing, extra } = scopeDiff(
      token.scopes_granted,
      token.scopes_requested
    );
    const scopes = h('div', 'chat-oauth2-scopes', 'Scopes: ');
    for (const scope of token.scopes_granted) {
      scopes.append(
        h('span', 'chat-oauth2-scope chat-oauth2-scope-granted', scope),
        ' '
      );
    }
    for (const scope of missing) {
      const node = h(
        'span',
        'chat-oauth2-scope chat-oauth2-scope-missing',
        scope
      );
      node.title = 'Requested, not granted';
      scopes.append(node, ' ');
    }
    if (token.scopes_granted.length === 0 && missing.length === 0) {
      scopes.append('none');
    }
    if (extra.length > 0) {
      scopes.title = `Granted without being requested: ${extra.join(' ')}`;
    }
    box.append(scopes);
    const facts: string[] = [];
    facts.push(
      token.has_refresh_token ? 'refresh token held' : 'no refresh token'
    );
    if (token.bound) {
      facts.push(`bound: ${token.bound}`);
    }
    if (
      token.refreshed_at &&
      token.refreshed_at > (token.obtained_at ?? 0) + 1
    ) {
      facts.push(
        `refreshed ${new Date(token.refreshed_at * 1000).toLocaleTimeString()}`
      );
    } else if (token.obtained_at) {
      facts.push(
        `obtained ${new Date(token.obtained_at * 1000).toLocaleTimeString()}`
      );
    }
    box.append(h('div', 'chat-oauth2-facts', facts.join(' · ')));
    if (token.refresh_expires_at) {
      const refreshClock = h(
        'span',
        'chat-oauth2-countdown chat-oauth2-refresh-countdown'
      );
      refreshClock.dataset.expiresAt = String(token.refresh_expires_at);
      refreshClock.dataset.prefix = 'Refresh token expires in ';
      box.append(h('div', 'chat-oauth2-refresh-expiry', refreshClock));
    }
    if (token.error) {
      box.append(renderError(new ApiError(0, token.error)));
    }
    return box;
  }

  private renderProvider(provider: IProvider): HTMLElement {
    const box = h('div', 'chat-oauth2-provider');
    if (provider.redirect_uri) {
      const copy = h(
        'button',
        'jp-Button jp-mod-styled chat-oauth2-copy chat-oauth2-copy-redirect',
        'Copy'
      );
      copy.title = 'Copy the redirect URI to register at the provider';
      const uri = provider.redirect_uri;
      copy.addEventListener('click', async () => {
        const ok = await copyText(uri);
        copy.textContent = ok ? 'Copied' : 'Copy failed';
        window.setTimeout(() => {
          copy.textContent = 'Copy';
        }, 2000);
      });
      box.append(
        h('div', 'chat-oauth2-label', 'Redirect URI to register'),
        h(
          'div',
          'chat-oauth2-redirect',
          h('code', 'chat-oauth2-redirect-uri', uri),
          copy
        )
      );
    }
    const way = h('div', 'chat-oauth2-way', provider.way_text);
    way.dataset.way = provider.way;
    box.append(way);
    if (provider.issuer) {
      box.append(h('div', 'chat-oauth2-issuer', `Issuer: ${provider.issuer}`));
    }
    if (provider.scopes.length > 0) {
      box.append(
        h(
          'div',
          'chat-oauth2-requested',
          `Requests: ${provider.scopes.join(' ')}`
        )
      );
    }
    return box;
  }

  private renderActions(
    alias: string,
    provider: IProvider | null,
    token: IToken | null
  ): HTMLElement {
    const memory = this.remember(alias);
    const bar = h('div', 'chat-oauth2-actions');
    const button = (
      name: string,
      label: string,
      enabled: boolean,
      action: () => Promise<void>,
      extra = ''
    ): void => {
      const node = h(
        'button',
        `jp-Button jp-mod-styled chat-oauth2-${name} ${extra}`,
        label
      );
      node.disabled = !enabled || memory.busy !== undefined;
      if (!enabled && provider?.why_not) {
        node.title = provider.why_not;
      }
      node.addEventListener('click', () => void action());
      bar.append(node);
    };
    const authorized = token !== null && token.status !== 'revoked';
    button(
      'authorize',
      authorized ? 'Authorize again' : 'Authorize',
      provider?.can_authorize ?? false,
      () => this.authorize(alias),
      authorized ? '' : 'jp-mod-accept'
    );
    if (token) {
      const refreshable =
        provider?.can_refresh !== false && token.status !== 'revoked';
      button('refresh', 'Refresh', refreshable, () => this.refresh(alias));
      button(
        'revoke',
        'Revoke',
        provider?.can_revoke !== false,
        () => this.revoke(alias),
        'jp-mod-warn'
      );
    }
    button('check', 'Check configuration', provider !== null, () =>
      this.check(alias)
    );
    if (token?.has_id_token) {
      button(
        'claims-toggle',
        memory.claims ? 'Hide claims' : 'Show claims',
        true,
        () => this.toggleClaims(alias)
      );
    }
    return bar;
  }

  private renderClaims(claims: Record<string, unknown>): HTMLElement {
    const list = h('dl', 'chat-oauth2-claims');
    for (const [key, value] of Object.entries(claims)) {
      list.append(
        h('dt', '', key),
        h('dd', '', typeof value === 'string' ? value : JSON.stringify(value))
      );
    }
    return list;
  }

  /** Run one action with the card marked busy; its error stays on the card. */
  private async act(
    alias: string,
    busy: string,
    work: (m: ICardMemory) => Promise<void>
  ): Promise<void> {
    const memory = this.remember(alias);
    memory.busy = busy;
    memory.error = undefined;
    memory.outcome = { text: `${busy}…`, tone: 'neutral' };
    this.render();
    try {
      await work(memory);
    } catch (error) {
      memory.outcome = undefined;
      memory.error = error;
    } finally {
      memory.busy = undefined;
    }
    // Server-side actions move the version at once; read it now rather than wait for the poll.
    await this.reload();
  }

  /** Ask the server for a start link and open it in a new tab. */
  authorize(alias: string): Promise<void> {
    // Opened now, inside the click, so no popup blocker stops it; pointed at the link below.
    const tab = window.open('', '_blank');
    return this.act(alias, 'Starting', async memory => {
      try {
        const answer = await this.api.authorize(alias);
        const url = absoluteLink(
          answer.start_url,
          this.baseUrl,
          window.location.origin
        );
        memory.waiting = {
          url,
          until: Date.now() / 1000 + answer.expires_in,
          since: this.now()
        };
        memory.report = undefined;
        if (tab) {
          // The provider's pages get no handle on this window.
          tab.opener = null;
          tab.location.href = url;
        } else {
          window.open(url, '_blank', 'noopener');
        }
        memory.outcome = {
          text: 'Approve in the new tab; this turns green when the provider redirects back.',
          tone: 'neutral'
        };
      } catch (error) {
        tab?.close();
        throw error;
      }
    });
  }

  /** Refresh one alias's token now. */
  refresh(alias: string): Promise<void> {
    return this.act(alias, 'Refreshing', async memory => {
      const answer = await this.api.refresh(alias);
      memory.outcome = {
        text: `Refreshed at ${new Date().toLocaleTimeString()} (token ${answer.token.masked})`,
        tone: 'good'
      };
    });
  }

  /** Revoke one alias's token, after the person confirms. */
  async revoke(alias: string): Promise<void> {
    if (this.settings.confirmRevoke) {
      const result = await showDialog({
        title: `Revoke the token for ${alias}?`,
        body: 'The provider and this server forget it; you will have to authorize again.',
        buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Revoke' })]
      });
      if (!result.button.accept) {
        return;
      }
    }
    return this.act(alias, 'Revoking', async memory => {
      await this.api.revoke(alias);
      memory.waiting = undefined;
      memory.claims = undefined;
      memory.outcome = {
        text: `Revoked at ${new Date().toLocaleTimeString()}`,
        tone: 'neutral'
      };
    });
  }

  /** Run the doctor for one alias and show its report on the card. */
  check(alias: string): Promise<void> {
    return this.act(alias, 'Checking', async memory => {
      memory.report = await this.api.check(alias);
      memory.outcome = {
        text: `Checked the configuration: ${memory.report.ok ? 'no failure' : 'something to fix'}`,
        tone: memory.report.ok ? 'good' : 'bad'
      };
    });
  }

  private toggleClaims(alias: string): Promise<void> {
    const memory = this.remember(alias);
    if (memory.claims) {
      memory.claims = undefined;
      this.render();
      return Promise.resolve();
    }
    return this.act(alias, 'Reading claims', async m => {
      m.claims = (await this.api.claims(alias)).claims;
      m.outcome = undefined;
    });
  }

  /** Once a second: every countdown and status, from the browser's clock. */
  private tick(): void {
    const now = this.now();
    const soon = this.settings.expiresSoonSeconds;
    for (const node of Array.from(
      this.node.querySelectorAll<HTMLElement>('.chat-oauth2-countdown')
    )) {
      const raw = node.dataset.expiresAt;
      const value = raw ? Number(raw) : null;
      const shown = countdown(value, now, {
        prefix: node.dataset.prefix ?? 'Expires in ',
        emptyText: 'No expiry given',
        soonSeconds: soon
      });
      node.textContent = shown.text;
      node.classList.toggle('chat-oauth2-soon', shown.soon);
    }
    for (const node of Array.from(
      this.node.querySelectorAll<HTMLElement>('.chat-oauth2-status')
    )) {
      const server = node.dataset.serverStatus;
      let label = 'Not authorized';
      let tone = 'neutral';
      if (server && server !== 'none') {
        const raw = node.dataset.expiresAt;
        const view = tokenStatus(
          {
            status: server as IToken['status'],
            expires_at: raw ? Number(raw) : null
          },
          now,
          soon
        );
        label = view.label;
        tone = view.tone;
        node.dataset.status = view.status;
      } else {
        node.dataset.status = 'none';
      }
      if (node.textContent !== label) {
        node.textContent = label;
      }
      node.className = `chat-oauth2-status chat-oauth2-tone-${tone}`;
    }
  }
}
