// Who could do X at T: every account whose role granted the permission
// and every token that could use it, replayed from the log.

import * as api from '../api.js';
import { el, table, field, errorText } from '../dom.js';
import { when, whenRelative, fromLocalInput, list } from '../format.js';

export async function whoCanPage(ctx) {
  const permission = el('input', { name: 'permission', required: true, placeholder: 'certificates:issue' });
  const at = el('input', { type: 'datetime-local', name: 'at', step: 1 });
  const results = el('div', { attrs: { 'aria-live': 'polite' } });
  const form = el('form', {
    class: 'grid',
    on: {
      submit: async (event) => {
        event.preventDefault();
        results.replaceChildren(el('p', { class: 'muted', text: 'Replaying the log…' }));
        try {
          const entries = await api.lines(`/v1/audit/who-can${api.query({ permission: permission.value.trim(), at: fromLocalInput(at.value) })}`);
          results.replaceChildren(answer(entries));
        } catch (error) {
          results.replaceChildren(errorText(error));
        }
      },
    },
  },
  field('Permission', permission, 'resource:action'),
  field('At', at, 'your local time; empty: now'),
  el('button', { type: 'submit', text: 'Who could?' }));
  return el('div', {},
    el('h1', { text: 'Who could do it?' }),
    ctx.can('audit:read') ? el('section', { class: 'panel' }, form) : el('p', { class: 'notice', text: 'This needs the audit:read permission, which this token does not hold.' }),
    results);
}

function answer(entries) {
  const moment = entries.find((e) => e.kind === 'moment');
  const accounts = entries.filter((e) => e.kind === 'account');
  const tokens = entries.filter((e) => e.kind === 'token');
  return el('div', { class: 'who-can-answer' },
    moment ? el('p', { class: 'notice', text: `${moment.permission} at ${when(moment.at)} (log position ${moment.position}): ${accounts.length} account(s), ${tokens.length} token(s).` }) : null,
    el('h2', { text: 'Accounts whose role granted it' }),
    table([
      { label: 'Account', cell: (a) => el('a', { href: `#/accounts/${a.account_id}`, text: a.account_name }) },
      { label: 'Role', cell: (a) => a.role },
      { label: 'Granted by', cell: (a) => el('code', { text: list(a.role_grants) }) },
      { label: 'Tokens holding it', cell: (a) => String(a.holding_tokens) },
    ], accounts, { empty: 'No account.' }),
    el('h2', { text: 'Tokens that could use it' }),
    table([
      { label: 'Token', cell: (t) => el('a', { href: `#/tokens/${t.token_id}`, text: t.token_name }) },
      { label: 'Account', cell: (t) => t.account_name },
      { label: 'Scope', cell: (t) => el('code', { text: list(t.scope_grants) }) },
      { label: 'Issued', cell: (t) => when(t.issued_at) },
      { label: 'Expires', cell: (t) => whenRelative(t.expires_at) },
    ], tokens, { empty: 'No token.' }));
}
