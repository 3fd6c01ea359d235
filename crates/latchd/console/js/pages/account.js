// One account: what it is, its tokens (scopes, effective permissions,
// expiry, last use, rotation due) and, for a token that may, the actions:
// issue, rotate, revoke; disable and enable the account. (Deleting, which
// is final and takes no reason, is left to the CLI.) A new token's secret
// is shown once, in this page's memory only.

import * as api from '../api.js';
import { el, table, badge, field, errorText, announce, link } from '../dom.js';
import { millis, when, whenRelative, list, actor } from '../format.js';
import { confirmAction, secretPanel } from '../dialogs.js';

export async function accountPage(ctx, id) {
  const [account, { tokens }] = await Promise.all([
    api.get(`/v1/accounts/${id}`, { signal: ctx.signal }),
    api.get(`/v1/accounts/${id}/tokens`, { signal: ctx.signal }),
  ]);
  const canWriteTokens = ctx.can('tokens:write');
  const canWriteAccounts = ctx.can('accounts:write');
  const secretSlot = el('div', {});
  const message = el('div', { attrs: { 'aria-live': 'polite' } });

  const act = async (work, done) => {
    message.replaceChildren();
    try {
      const result = await work();
      if (done) done(result);
      else await ctx.rerender();
    } catch (error) {
      message.replaceChildren(errorText(error));
    }
  };

  const showSecret = (issued) => {
    // Re-render the tokens beneath, keep the secret above until dismissed.
    secretSlot.replaceChildren(secretPanel(issued, () => announce('Secret hidden')));
    announce(`Token ${issued.name} issued; copy its secret now`);
    refreshTokens();
  };

  const tokensSlot = el('div', {});
  const refreshTokens = async () => {
    const fresh = await api.get(`/v1/accounts/${id}/tokens`, { signal: ctx.signal });
    tokensSlot.replaceChildren(tokenTable(fresh.tokens));
  };

  const tokenActions = (token) => {
    const story = link(`#/tokens/${token.id}`, 'Story');
    if (!canWriteTokens || token.status !== 'active') return el('div', { class: 'actions' }, story);
    return el('div', { class: 'actions' }, story,
      el('button', {
        type: 'button', class: 'secondary', text: 'Rotate',
        attrs: { 'aria-label': `Rotate token ${token.name}` },
        on: {
          click: async () => {
            const grace = el('input', { name: 'grace', placeholder: 'policy default' });
            const answer = await confirmAction({
              title: `Rotate token "${token.name}"?`,
              message: 'A new token replaces it. The old one keeps working for the grace period, then stops.',
              confirmLabel: 'Rotate',
              danger: false,
              askReason: false,
              extra: [field('Grace', grace, 'e.g. 1h; empty: the policy\'s rotation grace')],
            });
            if (answer === null) return;
            act(() => api.command('POST', `/v1/tokens/${token.id}/rotate`, grace.value.trim() ? { grace: grace.value.trim() } : {}), showSecret);
          },
        },
      }),
      el('button', {
        type: 'button', class: 'danger', text: 'Revoke',
        attrs: { 'aria-label': `Revoke token ${token.name}` },
        on: {
          click: async () => {
            const family = el('input', { type: 'checkbox', name: 'family' });
            const reason = await confirmAction({
              title: `Revoke token "${token.name}"?`,
              message: 'Every verifier refuses it within milliseconds. This cannot be undone.',
              confirmLabel: 'Revoke',
              extra: [el('label', { class: 'inline' }, el('span', {}, family, ' Also revoke its rotation family (for a leak)'))],
            });
            if (reason === null) return;
            act(async () => {
              await api.command('POST', `/v1/tokens/${token.id}/revoke`, { reason, family: family.checked });
              announce(`Token ${token.name} revoked`);
              await refreshTokens();
            }, () => {});
          },
        },
      }));
  };

  const tokenTable = (rows) => table([
    { label: 'Name', cell: (t) => el('div', {}, el('strong', { text: t.name }), el('div', { class: 'mono muted', text: t.id })) },
    { label: 'Status', cell: (t) => el('div', {}, badge(t.status), t.revoke_reason ? el('div', { class: 'muted', text: t.revoke_reason }) : null) },
    { label: 'Scopes', cell: (t) => el('code', { text: list(t.scopes) }) },
    { label: 'Effective', cell: (t) => el('code', { text: list(t.effective_permissions) }) },
    { label: 'Expires', cell: (t) => whenRelative(t.expires_at) },
    { label: 'Last used', cell: (t) => el('div', {}, whenRelative(t.last_used_at), t.last_used_from ? el('div', { class: 'muted', text: `from ${t.last_used_from}${t.last_reported_by ? ` via ${t.last_reported_by}` : ''}` }) : null) },
    { label: 'Rotation due', cell: (t) => t.rotation_due_at ? el('span', { class: millis(t.rotation_due_at) <= Date.now() ? 'badge due' : '', text: whenRelative(t.rotation_due_at) }) : '—' },
    { label: 'Actions', cell: tokenActions },
  ], rows, { empty: 'This account has no tokens.', caption: 'Tokens' });
  tokensSlot.replaceChildren(tokenTable(tokens));

  const accountActions = [];
  if (canWriteAccounts && account.status === 'active') {
    accountActions.push(el('button', {
      type: 'button', class: 'danger', text: 'Disable account',
      on: {
        click: async () => {
          const reason = await confirmAction({
            title: `Disable ${account.name}?`,
            message: 'Every token of the account stops working at once, at latchd and every verifier. Enabling it brings back those not revoked or expired.',
            confirmLabel: 'Disable',
          });
          if (reason !== null) act(() => api.command('POST', `/v1/accounts/${id}/disable`, { reason }));
        },
      },
    }));
  }
  if (canWriteAccounts && account.status === 'disabled') {
    accountActions.push(el('button', {
      type: 'button', text: 'Enable account',
      on: {
        click: async () => {
          const answer = await confirmAction({
            title: `Enable ${account.name}?`,
            message: 'Its tokens that are not revoked or expired work again.',
            confirmLabel: 'Enable', danger: false, askReason: false,
          });
          if (answer !== null) act(() => api.command('POST', `/v1/accounts/${id}/enable`, {}));
        },
      },
    }));
  }
  return el('div', {},
    el('p', {}, link('#/accounts', '← Accounts')),
    el('h1', { text: account.name }),
    el('section', { class: 'panel' },
      el('dl', { class: 'facts' },
        el('dt', { text: 'Status' }), el('dd', {}, badge(account.status), account.disabled_reason ? ` ${account.disabled_reason}` : '', account.status_since ? el('span', { class: 'muted', text: ` since ${when(account.status_since)}` }) : null),
        el('dt', { text: 'Role' }), el('dd', {}, account.role, el('div', {}, el('code', { text: list(account.permissions) }))),
        el('dt', { text: 'Description' }), el('dd', { text: account.description || '—' }),
        el('dt', { text: 'Created' }), el('dd', { text: `${when(account.created_at)} by ${actor(account.created_by)}` }),
        el('dt', { text: 'Id' }), el('dd', { class: 'mono', text: account.id })),
      accountActions.length ? el('div', { class: 'actions account-actions' }, accountActions) : null),
    message,
    secretSlot,
    el('h2', { text: 'Tokens' }),
    canWriteTokens && account.status === 'active' ? issueForm(id, showSecret, message) : null,
    tokensSlot);
}

function issueForm(accountId, showSecret, message) {
  const name = el('input', { name: 'token-name', required: true, maxLength: 128 });
  const scopes = el('input', { name: 'scopes', placeholder: 'the role\'s permissions' });
  const ttl = el('input', { name: 'ttl', placeholder: 'policy default' });
  const cidrs = el('input', { name: 'allowed-cidrs', placeholder: 'any address' });
  const words = (input) => input.value.split(/[\s,]+/).filter(Boolean);
  const form = el('form', {
    class: 'grid',
    on: {
      submit: async (event) => {
        event.preventDefault();
        message.replaceChildren();
        const body = { name: name.value.trim() };
        if (words(scopes).length) body.scopes = words(scopes);
        if (ttl.value.trim()) body.ttl = ttl.value.trim();
        if (words(cidrs).length) body.allowed_cidrs = words(cidrs);
        try {
          const issued = await api.command('POST', `/v1/accounts/${accountId}/tokens`, body);
          form.reset();
          showSecret(issued);
        } catch (error) {
          message.replaceChildren(errorText(error));
        }
      },
    },
  },
  field('Name', name),
  field('Scopes', scopes, 'space-separated, e.g. certificates:issue'),
  field('Expires after', ttl, 'e.g. 30d, or never'),
  field('Allowed addresses', cidrs, 'CIDRs, space-separated'),
  el('button', { type: 'submit', text: 'Issue token' }));
  return el('details', { class: 'panel' }, el('summary', { text: 'Issue a token' }), form);
}
