import {
  MAX_BELIEVED_SKEW,
  clockSkew,
  countdown,
  formatDuration,
  orderRows,
  scopeDiff,
  tokenStatus,
  viewSkew
} from '../format';

describe('formatDuration', () => {
  it.each([
    [0, '0 s'],
    [12, '12 s'],
    [12.9, '12 s'],
    [59, '59 s'],
    [60, '1 min 00 s'],
    [58 * 60 + 12, '58 min 12 s'],
    [3600, '1 h 00 min'],
    [3600 + 2 * 60 + 59, '1 h 02 min'],
    [23 * 3600 + 59 * 60, '23 h 59 min'],
    [86400 + 3 * 3600, '1 d 03 h'],
    [-5, '0 s']
  ])('%p s reads %p', (seconds, text) => {
    expect(formatDuration(seconds)).toBe(text);
  });
});

describe('countdown', () => {
  const now = 1_765_100_000;

  it('counts down with the prefix', () => {
    expect(countdown(now + 3720, now)).toEqual({
      text: 'Expires in 1 h 02 min',
      soon: false,
      expired: false
    });
  });

  it('marks the last minutes as soon, by the threshold given', () => {
    expect(countdown(now + 299, now).soon).toBe(true);
    expect(countdown(now + 301, now).soon).toBe(false);
    expect(countdown(now + 500, now, { soonSeconds: 600 }).soon).toBe(true);
  });

  it('says expired at and after the deadline', () => {
    expect(countdown(now, now, { expiredText: 'Over' })).toEqual({
      text: 'Over',
      soon: true,
      expired: true
    });
    expect(countdown(now - 10, now).text).toBe('Expired');
  });

  it('shows the empty text without an expiry', () => {
    expect(countdown(null, now, { emptyText: 'no expiry' }).text).toBe(
      'no expiry'
    );
    expect(countdown(NaN, now).text).toBe('');
  });
});

describe('clock skew', () => {
  it('is the browser minus the kernel at receipt', () => {
    expect(clockSkew(1000.5, 990.5)).toBe(10);
    expect(clockSkew(1000, 0)).toBe(0);
  });

  it('believes a fresh sent_at whatever the skew', () => {
    expect(viewSkew(5000, 1000, 0, true)).toBe(4000);
  });

  it('takes an old sent_at from saved state for no skew at all', () => {
    expect(viewSkew(5000, 1000, 0, false)).toBe(-0);
    expect(viewSkew(1000 + MAX_BELIEVED_SKEW / 2, 1000, 0, false)).toBe(
      MAX_BELIEVED_SKEW / 2
    );
  });

  it('falls back to clock_offset (kernel minus browser) without sent_at', () => {
    expect(viewSkew(5000, 0, 7, false)).toBe(-7);
  });
});

describe('tokenStatus', () => {
  const now = 1000;

  it.each([
    ['authorized', 'Authorized', 'good'],
    ['expires_soon', 'Expires soon', 'warn'],
    ['expired', 'Expired', 'bad'],
    ['refresh_expiring', 'Refresh token expiring', 'warn'],
    ['revoked', 'Revoked', 'neutral'],
    ['error', 'Error', 'bad']
  ] as const)('maps %s to %s (%s)', (status, label, tone) => {
    const view = tokenStatus({ status, expires_at: null }, now, 300);
    expect(view).toEqual({ status, label, tone });
  });

  it('moves authorized to expires soon, then expired, by the browser clock', () => {
    const token = { status: 'authorized' as const, expires_at: now + 3600 };
    expect(tokenStatus(token, now, 300).status).toBe('authorized');
    expect(tokenStatus(token, now + 3400, 300).status).toBe('expires_soon');
    expect(tokenStatus(token, now + 3600, 300).status).toBe('expired');
  });

  it('keeps revoked and error as the server said', () => {
    expect(
      tokenStatus({ status: 'revoked', expires_at: now - 1 }, now, 300).status
    ).toBe('revoked');
    expect(
      tokenStatus({ status: 'error', expires_at: now - 1 }, now, 300).status
    ).toBe('error');
  });

  it('shows an unknown status as an error with its own words', () => {
    const view = tokenStatus(
      { status: 'frozen' as any, expires_at: null },
      now,
      300
    );
    expect(view).toEqual({ status: 'error', label: 'frozen', tone: 'bad' });
  });
});

describe('scopes and rows', () => {
  it('tells requested-not-granted and granted-not-requested scopes apart', () => {
    expect(
      scopeDiff(['openid', 'email', 'extra'], ['openid', 'email', 'profile'])
    ).toEqual({
      granted: ['openid', 'email', 'extra'],
      missing: ['profile'],
      extra: ['extra']
    });
  });

  it("puts the doctor's failures first, then warnings, keeping each group's order", () => {
    const rows = [
      { check: 'a', status: 'ok' },
      { check: 'b', status: 'fail' },
      { check: 'c', status: 'skip' },
      { check: 'd', status: 'warn' },
      { check: 'e', status: 'fail' }
    ];
    expect(orderRows(rows).map(r => r.check)).toEqual([
      'b',
      'e',
      'd',
      'a',
      'c'
    ]);
  });
});
