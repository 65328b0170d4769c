/**
 * The widget views the Python panel uses (chat_oauth2_nb.widgets): a countdown the browser
 * draws (no Python tick) and a copy button for non-secret text.
 */
import { DOMWidgetModel, DOMWidgetView } from '@jupyter-widgets/base';

import { copyText } from './clipboard';
import { countdown, viewSkew } from './format';
import { MODULE_NAME, MODULE_VERSION } from './version';

const common = {
  _model_module: MODULE_NAME,
  _model_module_version: MODULE_VERSION,
  _view_module: MODULE_NAME,
  _view_module_version: MODULE_VERSION
};

/** The model of a countdown; its traits are set by the kernel. */
export class CountdownModel extends DOMWidgetModel {
  defaults(): any {
    return {
      ...super.defaults(),
      ...common,
      _model_name: 'CountdownModel',
      _view_name: 'CountdownView',
      expires_at: null,
      clock_offset: 0,
      sent_at: 0,
      prefix: 'Expires in ',
      expired_text: 'Expired',
      empty_text: '',
      soon_seconds: 300
    };
  }

  /** Browser minus kernel clock, measured when sent_at last arrived. */
  skew!: number;

  initialize(attributes: any, options: any): void {
    super.initialize(attributes, options);
    this.skew = viewSkew(
      Date.now() / 1000,
      Number(this.get('sent_at')) || 0,
      Number(this.get('clock_offset')) || 0,
      false
    );
    this.on('change:sent_at change:clock_offset', () => {
      this.skew = viewSkew(
        Date.now() / 1000,
        Number(this.get('sent_at')) || 0,
        Number(this.get('clock_offset')) || 0,
        true
      );
    });
  }

  static model_name = 'CountdownModel';
  static model_module = MODULE_NAME;
  static model_module_version = MODULE_VERSION;
  static view_name = 'CountdownView';
  static view_module = MODULE_NAME;
  static view_module_version = MODULE_VERSION;
}

/** Draws the countdown once a second from the browser's clock. */
export class CountdownView extends DOMWidgetView {
  private timer: number | undefined;

  render(): void {
    this.el.classList.add('chat-oauth2-countdown');
    this.listenTo(this.model, 'change', () => this.draw());
    this.timer = window.setInterval(() => this.draw(), 1000);
    this.draw();
  }

  /** The text at this moment. */
  draw(): void {
    const model = this.model as CountdownModel;
    const raw = model.get('expires_at');
    const expiresAt = raw === null || raw === undefined ? null : Number(raw);
    const shown = countdown(
      expiresAt === null ? null : expiresAt + (model.skew ?? 0),
      Date.now() / 1000,
      {
        prefix: model.get('prefix'),
        expiredText: model.get('expired_text'),
        emptyText: model.get('empty_text'),
        soonSeconds: Number(model.get('soon_seconds'))
      }
    );
    if (this.el.textContent !== shown.text) {
      this.el.textContent = shown.text;
    }
    this.el.classList.toggle('chat-oauth2-soon', shown.soon);
    this.el.classList.toggle('chat-oauth2-expired', shown.expired);
  }

  remove(): any {
    window.clearInterval(this.timer);
    this.timer = undefined;
    return super.remove();
  }
}

/** The model of a copy button. */
export class CopyButtonModel extends DOMWidgetModel {
  defaults(): any {
    return {
      ...super.defaults(),
      ...common,
      _model_name: 'CopyButtonModel',
      _view_name: 'CopyButtonView',
      text: '',
      description: 'Copy',
      tooltip: ''
    };
  }

  static model_name = 'CopyButtonModel';
  static model_module = MODULE_NAME;
  static model_module_version = MODULE_VERSION;
  static view_name = 'CopyButtonView';
  static view_module = MODULE_NAME;
  static view_module_version = MODULE_VERSION;
}

/** A Lab-styled button that copies its `text`, then says "Copied" for 2 s. */
export class CopyButtonView extends DOMWidgetView {
  private button: HTMLButtonElement | null = null;
  private reset: number | undefined;

  render(): void {
    this.el.classList.add('chat-oauth2-copy-widget');
    const button = document.createElement('button');
    button.className = 'jp-Button jp-mod-styled chat-oauth2-copy';
    button.type = 'button';
    button.addEventListener('click', () => void this.copy());
    this.button = button;
    this.el.appendChild(button);
    this.listenTo(this.model, 'change', () => this.draw());
    this.draw();
  }

  draw(): void {
    if (!this.button || this.reset !== undefined) {
      return;
    }
    this.button.textContent = this.model.get('description') || 'Copy';
    this.button.title = this.model.get('tooltip') || '';
  }

  async copy(): Promise<void> {
    if (!this.button) {
      return;
    }
    const ok = await copyText(String(this.model.get('text') ?? ''));
    this.button.textContent = ok ? 'Copied' : 'Copy failed';
    window.clearTimeout(this.reset);
    this.reset = window.setTimeout(() => {
      this.reset = undefined;
      this.draw();
    }, 2000);
  }

  remove(): any {
    window.clearTimeout(this.reset);
    return super.remove();
  }
}
