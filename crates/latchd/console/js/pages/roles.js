// Roles and the token policy (global, and each role's overrides).

import * as api from '../api.js';
import { el, table } from '../dom.js';
import { list } from '../format.js';

export async function rolesPage(ctx) {
  const [roles, policy] = await Promise.all([
    ctx.can('roles:read') ? api.get('/v1/roles', { signal: ctx.signal }).then((r) => r.roles) : null,
    ctx.can('policy:read') ? api.get('/v1/policy', { signal: ctx.signal }) : null,
  ]);
  return el('div', {},
    el('h1', { text: 'Roles and policy' }),
    el('h2', { text: 'Roles' }),
    roles ? table([
      { label: 'Role', cell: (r) => el('strong', { text: r.name }) },
      { label: 'Permissions', cell: (r) => el('code', { text: list(r.permissions) }) },
      { label: 'Kind', cell: (r) => (r.builtin ? 'built in' : 'custom') },
      { label: 'Description', cell: (r) => r.description },
    ], roles, { caption: 'Roles' }) : el('p', { class: 'muted', text: 'Needs roles:read.' }),
    el('h2', { text: 'Token policy' }),
    policy ? policyView(policy) : el('p', { class: 'muted', text: 'Needs policy:read.' }),
    el('p', { class: 'muted', text: 'Roles and policy are changed with `latch role set` and `latch policy set` (or PUT /v1/roles/{name}, PUT /v1/policy).' }));
}

function policyView(policy) {
  // What applies to each role now (every layer and default resolved); a
  // value a role overrides is marked.
  const rows = Object.entries(policy.effective || {});
  const settings = [...new Set(rows.flatMap(([, effective]) => Object.keys(effective)))];
  const overridden = (role, setting) => {
    const layer = (policy.roles || {})[role];
    return layer && layer[setting] !== null && layer[setting] !== undefined;
  };
  return table([
    { label: 'Role', cell: ([role]) => el('strong', { text: role }) },
    ...settings.map((setting) => ({
      label: setting.replaceAll('_', ' '),
      cell: ([role, effective]) => {
        const value = effective[setting] === null || effective[setting] === undefined ? '—' : String(effective[setting]);
        return overridden(role, setting) ? el('span', { title: 'set for this role', text: `${value} *` }) : value;
      },
    })),
  ], rows, { caption: 'Effective policy per role' });
}
