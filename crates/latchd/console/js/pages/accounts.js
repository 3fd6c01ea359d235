// Accounts: search by name, role or description; filter by status; create.

import * as api from '../api.js';
import { el, table, badge, field, errorText, announce } from '../dom.js';
import { whenRelative } from '../format.js';

export async function accountsPage(ctx) {
  const [{ accounts }, roles] = await Promise.all([
    api.get('/v1/accounts', { signal: ctx.signal }),
    ctx.can('roles:read') ? api.get('/v1/roles', { signal: ctx.signal }).then((r) => r.roles).catch(() => []) : [],
  ]);
  const search = el('input', { type: 'search', name: 'search', placeholder: 'name, role or description' });
  const status = el('select', { name: 'status' },
    ['all', 'active', 'disabled', 'deleted'].map((s) => el('option', { value: s, text: s, selected: s === 'active' })));
  const results = el('div', {});
  const count = el('p', { class: 'muted', attrs: { 'aria-live': 'polite' } });

  const show = () => {
    const text = search.value.trim().toLowerCase();
    const shown = accounts.filter((a) =>
      (status.value === 'all' || a.status === status.value)
      && (!text || [a.name, a.role, a.description].some((v) => (v || '').toLowerCase().includes(text))));
    count.textContent = `${shown.length} of ${accounts.length} accounts`;
    results.replaceChildren(table([
      { label: 'Name', cell: (a) => el('a', { href: `#/accounts/${a.id}`, text: a.name }) },
      { label: 'Role', cell: (a) => a.role },
      { label: 'Status', cell: (a) => badge(a.status) },
      { label: 'Live tokens', cell: (a) => String(a.live_tokens ?? '') },
      { label: 'Last used', cell: (a) => whenRelative(a.last_used_at) },
      { label: 'Description', cell: (a) => a.description },
    ], shown, { empty: 'No account matches.', caption: 'Service accounts' }));
  };
  search.addEventListener('input', show);
  status.addEventListener('change', show);
  show();

  return el('div', {},
    el('h1', { text: 'Service accounts' }),
    ctx.can('accounts:write') ? createForm(roles, ctx) : null,
    el('div', { class: 'toolbar', attrs: { role: 'search' } }, field('Search', search), field('Status', status)),
    count,
    results);
}

function createForm(roles, ctx) {
  const name = el('input', { name: 'name', required: true, pattern: '[a-z0-9._-]{1,64}', maxLength: 64 });
  const role = roles.length
    ? el('select', { name: 'role', required: true }, roles.map((r) => el('option', { value: r.name, text: r.name })))
    : el('input', { name: 'role', required: true });
  const description = el('input', { name: 'description', maxLength: 1000 });
  const message = el('div', {});
  const form = el('form', {
    class: 'grid',
    on: {
      submit: async (event) => {
        event.preventDefault();
        message.replaceChildren();
        try {
          const created = await api.command('POST', '/v1/accounts', {
            name: name.value.trim(), role: role.value, description: description.value,
          });
          announce(`Account ${created.name} created`);
          window.location.hash = `#/accounts/${created.id}`;
        } catch (error) {
          message.replaceChildren(errorText(error));
        }
      },
    },
  },
  field('Name', name, 'a-z, 0-9, . _ -'),
  field('Role', role),
  field('Description', description),
  el('button', { type: 'submit', text: 'Create account' }));
  return el('details', { class: 'panel' }, el('summary', { text: 'New service account' }), form, message);
}
