/**
 * Pure formatting shared by the sidebar and the widget views: the countdown's text and a
 * token's status as the browser sees it now (the server's status, moved on by the clock).
 */
import { IToken, TokenStatus } from './api';

const pad = (n: number): string => String(n).padStart(2, '0');

/**
 * A duration in seconds as the panel writes it: "1 d 03 h", "1 h 02 min", "58 min 12 s",
 * "12 s". Fractions are cut (a countdown never shows more time than is left).
 */
export function formatDuration(seconds: number): string {
  const total = Math.max(0, Math.floor(seconds));
  const days = Math.floor(total / 86400);
  const hours = Math.floor((total % 86400) / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = total % 60;
  if (days > 0) {
    return `${days} d ${pad(hours)} h`;
  }
  if (hours > 0) {
    return `${hours} h ${pad(minutes)} min`;
  }
  if (minutes > 0) {
    return `${minutes} min ${pad(secs)} s`;
  }
  return `${secs} s`;
}

/** What a countdown shows at `now` (epoch s) for `expiresAt`, and whether it is soon or over. */
export interface ICountdown {
  text: string;
  soon: boolean;
  expired: boolean;
}

/** The countdown's text and state; `expiresAt` null gives `emptyText`. */
export function countdown(
  expiresAt: number | null,
  now: number,
  options: {
    prefix?: string;
    expiredText?: string;
    emptyText?: string;
    soonSeconds?: number;
  } = {}
): ICountdown {
  const {
    prefix = 'Expires in ',
    expiredText = 'Expired',
    emptyText = '',
    soonSeconds = 300
  } = options;
  if (expiresAt === null || expiresAt === undefined || !isFinite(expiresAt)) {
    return { text: emptyText, soon: false, expired: false };
  }
  const left = expiresAt - now;
  if (left <= 0) {
    return { text: expiredText, soon: true, expired: true };
  }
  return {
    text: `${prefix}${formatDuration(left)}`,
    soon: left < soonSeconds,
    expired: false
  };
}

/** The skew a view corrects by: the browser's clock minus the kernel's (or server's). */
export function clockSkew(browserNowAtReceipt: number, sentAt: number): number {
  if (!isFinite(sentAt) || sentAt <= 0) {
    return 0;
  }
  return browserNowAtReceipt - sentAt;
}

/** A status as shown: its words and the CSS modifier that colours it. */
export interface IStatusView {
  status: TokenStatus;
  label: string;
  tone: 'good' | 'warn' | 'bad' | 'neutral';
}

const LABELS: Record<TokenStatus, [string, IStatusView['tone']]> = {
  authorized: ['Authorized', 'good'],
  expires_soon: ['Expires soon', 'warn'],
  expired: ['Expired', 'bad'],
  refresh_expiring: ['Refresh token expiring', 'warn'],
  revoked: ['Revoked', 'neutral'],
  error: ['Error', 'bad']
};

/**
 * The status the sidebar shows at browser time `now` (epoch s, already corrected for the
 * server's clock): the server's answer, moved on when the access token's time ran out or
 * came within `soonSeconds` since the state was read.
 */
export function tokenStatus(
  token: Pick<IToken, 'status' | 'expires_at'>,
  now: number,
  soonSeconds: number
): IStatusView {
  let status: TokenStatus = token.status;
  if (
    (status === 'authorized' ||
      status === 'expires_soon' ||
      status === 'refresh_expiring') &&
    token.expires_at !== null
  ) {
    const left = token.expires_at - now;
    if (left <= 0) {
      status = 'expired';
    } else if (left < soonSeconds && status === 'authorized') {
      status = 'expires_soon';
    }
  }
  if (!(status in LABELS)) {
    return { status: 'error', label: String(status), tone: 'bad' };
  }
  const [label, tone] = LABELS[status];
  return { status, label, tone };
}

/** Scopes granted and requested side by side: which were asked for and not granted. */
export function scopeDiff(
  granted: string[],
  requested: string[]
): { granted: string[]; missing: string[]; extra: string[] } {
  const have = new Set(granted);
  const asked = new Set(requested);
  return {
    granted: [...granted],
    missing: requested.filter(s => !have.has(s)),
    extra: granted.filter(s => !asked.has(s))
  };
}

/** The doctor's rows in the order a person reads them: failures, warnings, then the rest. */
export function orderRows<T extends { status: string }>(rows: T[]): T[] {
  const rank: Record<string, number> = { fail: 0, warn: 1, ok: 2, skip: 3 };
  return rows
    .map((row, index) => ({ row, index }))
    .sort(
      (a, b) =>
        (rank[a.row.status] ?? 4) - (rank[b.row.status] ?? 4) ||
        a.index - b.index
    )
    .map(item => item.row);
}

/** A sent_at further back than this is taken for saved state, not a clock difference. */
export const MAX_BELIEVED_SKEW = 60;

/**
 * The browser-minus-kernel clock difference for a model whose `sent_at` arrived at
 * `receivedAt` (browser epoch s). `clock_offset` (kernel − browser, when something knew it)
 * is the fallback without a fresh `sent_at`.
 */
export function viewSkew(
  receivedAt: number,
  sentAt: number,
  clockOffset: number,
  fresh: boolean
): number {
  const skew = clockSkew(receivedAt, sentAt);
  if (sentAt > 0 && (fresh || Math.abs(skew) < MAX_BELIEVED_SKEW)) {
    return skew;
  }
  return -(clockOffset || 0);
}
