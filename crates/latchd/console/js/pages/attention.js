// Tokens that need a look: stale (live, unused for a while), expiring
// soon, and overdue for rotation under policy. Across every account.

import * as api from '../api.js';
import { el, table, field, badge, errorText } from '../dom.js';
import { whenRelative, list } from '../format.js';

export async function attentionPage(ctx) {
  const unused = el('input', { name: 'unused-since', value: '30d', size: 6 });
  const expiring = el('input', { name: 'expiring-within', value: '7d', size: 6 });
  const sections = el('div', { attrs: { 'aria-live': 'polite' } });
  const columns = [
    { label: 'Token', cell: (t) => el('a', { href: `#/tokens/${t.id}`, text: t.name }) },
    { label: 'Account', cell: (t) => el('a', { href: `#/accounts/${t.account_id}`, text: t.account_name }) },
    { label: 'Status', cell: (t) => badge(t.status) },
    { label: 'Effective', cell: (t) => el('code', { text: list(t.effective_permissions) }) },
    { label: 'Expires', cell: (t) => whenRelative(t.expires_at) },
    { label: 'Last used', cell: (t) => whenRelative(t.last_used_at) },
    { label: 'Rotation due', cell: (t) => whenRelative(t.rotation_due_at, '—') },
  ];
  const load = async () => {
    sections.replaceChildren(el('p', { class: 'muted', text: 'Loading…' }));
    try {
      const [stale, soon, due] = await Promise.all([
        api.get(`/v1/tokens${api.query({ unused_since: unused.value.trim() })}`, { signal: ctx.signal }),
        api.get(`/v1/tokens${api.query({ expiring_within: expiring.value.trim() })}`, { signal: ctx.signal }),
        api.get('/v1/tokens?rotation_due=true', { signal: ctx.signal }),
      ]);
      const part = (id, title, answer, empty) => el('section', { id },
        el('h2', { text: `${title} (${answer.tokens.length}${answer.truncated ? '+' : ''})` }),
        table(columns, answer.tokens, { empty }));
      sections.replaceChildren(
        part('stale', `Not used in ${unused.value.trim()}`, stale, 'No stale token.'),
        part('expiring', `Expiring within ${expiring.value.trim()}`, soon, 'No token expires that soon.'),
        part('rotation-due', 'Overdue for rotation', due, 'No token is overdue for rotation.'));
    } catch (error) {
      sections.replaceChildren(errorText(error));
    }
  };
  const form = el('form', { class: 'toolbar', on: { submit: (event) => { event.preventDefault(); load(); } } },
    field('Unused for', unused, 'e.g. 30d'),
    field('Expiring within', expiring, 'e.g. 7d'),
    el('button', { type: 'submit', text: 'Show' }));
  if (!(ctx.can('tokens:read') && ctx.can('accounts:read'))) {
    return el('div', {}, el('h1', { text: 'Stale and expiring tokens' }),
      el('p', { class: 'notice', text: 'This needs tokens:read and accounts:read.' }));
  }
  await load();
  return el('div', {}, el('h1', { text: 'Stale and expiring tokens' }), form, sections);
}
