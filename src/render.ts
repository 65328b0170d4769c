/** Small DOM helpers: typed errors, the doctor's report. No innerHTML: every text is text. */
import { ApiError, ICheckReport, IApiErrorBody } from './api';
import { orderRows } from './format';

/** Create an element with a class and text children. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className = '',
  ...children: (Node | string | null | undefined)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  for (const child of children) {
    if (child === null || child === undefined) {
      continue;
    }
    node.append(
      typeof child === 'string' ? document.createTextNode(child) : child
    );
  }
  return node;
}

/** The body of any thrown value, as the typed error form. */
export function errorBody(error: unknown): IApiErrorBody {
  if (error instanceof ApiError) {
    return error.body;
  }
  const message = error instanceof Error ? error.message : String(error);
  return {
    type: 'Error',
    message,
    what_failed: message,
    provider_said: null,
    what_to_change: null
  };
}

/**
 * A typed error as the panel shows it: its class name and what failed, what the provider
 * said (when it said something), and the line that tells what to change.
 */
export function renderError(error: unknown): HTMLElement {
  const body = errorBody(error);
  const box = h('div', 'chat-oauth2-error');
  box.setAttribute('role', 'alert');
  box.dataset.errorType = body.type;
  box.append(
    h(
      'div',
      'chat-oauth2-error-what',
      h('strong', '', `${body.type}: `),
      body.what_failed || body.message
    )
  );
  if (body.message && !body.message.includes(body.what_failed)) {
    box.append(h('div', 'chat-oauth2-error-message', body.message));
  }
  if (body.provider_said) {
    box.append(
      h(
        'div',
        'chat-oauth2-error-provider',
        'The provider said: ',
        h('code', '', body.provider_said)
      )
    );
  }
  if (body.what_to_change) {
    box.append(
      h(
        'div',
        'chat-oauth2-error-todo',
        'What to change: ',
        body.what_to_change
      )
    );
  }
  return box;
}

/** The doctor's report as a table, failures first. */
export function renderReport(report: ICheckReport): HTMLElement {
  const box = h('div', 'chat-oauth2-report');
  box.dataset.ok = String(report.ok);
  box.append(
    h(
      'div',
      `chat-oauth2-report-summary chat-oauth2-tone-${report.ok ? 'good' : 'bad'}`,
      report.summary
    )
  );
  const table = h('table', 'chat-oauth2-report-table');
  table.append(
    h(
      'thead',
      '',
      h(
        'tr',
        '',
        h('th', '', 'Check'),
        h('th', '', 'Result'),
        h('th', '', 'Detail')
      )
    )
  );
  const rows = h('tbody');
  for (const row of orderRows(report.rows)) {
    const tr = h('tr', `chat-oauth2-row-${row.status}`);
    tr.dataset.status = row.status;
    const detail = h('td', '', row.detail);
    if (row.todo) {
      detail.append(h('div', 'chat-oauth2-report-todo', row.todo));
    }
    tr.append(
      h('td', '', row.check),
      h('td', 'chat-oauth2-report-status', row.status),
      detail
    );
    rows.append(tr);
  }
  table.append(rows);
  box.append(table);
  return box;
}
