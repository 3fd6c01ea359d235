// A token's whole story, as `latch audit token` tells it: the token now,
// then in time order every event that changed it or what it may do, every
// request that presented it and every verifier's report of its uses.

import * as api from '../api.js';
import { el, badge, link } from '../dom.js';
import { when, whenRelative, list, actor } from '../format.js';

export async function tokenStoryPage(ctx, id) {
  if (!ctx.can('audit:read')) {
    return el('div', {}, el('h1', { text: 'Token story' }),
      el('p', { class: 'notice', text: 'A token\'s story needs the audit:read permission, which this token does not hold.' }));
  }
  const entries = await api.lines(`/v1/audit/tokens/${id}`);
  const now = entries.find((e) => e.kind === 'token');
  const story = entries.filter((e) => e.kind !== 'token');
  return el('div', {},
    now ? el('p', {}, link(`#/accounts/${now.account_id}`, `← ${now.account_name}`)) : null,
    el('h1', { text: now ? `Token "${now.name}"` : 'Token story' }),
    now ? el('section', { class: 'panel' }, el('dl', { class: 'facts' },
      el('dt', { text: 'Status now' }), el('dd', {}, badge(now.status), now.revoke_reason ? ` ${now.revoke_reason}` : ''),
      el('dt', { text: 'Account' }), el('dd', { text: now.account_name }),
      el('dt', { text: 'Scopes' }), el('dd', {}, el('code', { text: list(now.scopes) })),
      el('dt', { text: 'Effective now' }), el('dd', {}, el('code', { text: list(now.effective_permissions) })),
      el('dt', { text: 'Issued' }), el('dd', { text: `${when(now.issued_at)} by ${actor(now.issued_by)}` }),
      el('dt', { text: 'Expires' }), el('dd', { text: whenRelative(now.expires_at) }),
      el('dt', { text: 'Last used' }), el('dd', { text: `${whenRelative(now.last_used_at)}${now.last_used_from ? ` from ${now.last_used_from}` : ''}` }),
      now.rotated_from ? [el('dt', { text: 'Rotated from' }), el('dd', {}, link(`#/tokens/${now.rotated_from}`, now.rotated_from))] : null,
      now.rotated_to ? [el('dt', { text: 'Rotated to' }), el('dd', {}, link(`#/tokens/${now.rotated_to}`, now.rotated_to))] : null,
      now.parent ? [el('dt', { text: 'Exchanged from' }), el('dd', {}, link(`#/tokens/${now.parent}`, now.parent))] : null,
      el('dt', { text: 'Id' }), el('dd', { class: 'mono', text: now.id }))) : null,
    el('h2', { text: `Story (${story.length} entries)` }),
    story.length
      ? el('ol', { class: 'story' }, story.map(entry))
      : el('p', { class: 'muted', text: 'Nothing recorded.' }));
}

function entry(e) {
  const at = el('span', { class: 'when', text: when(e.at) });
  switch (e.kind) {
    case 'event':
      return el('li', { class: e.permissions_changed ? 'changed event' : 'event' },
        at, el('strong', { text: e.type }), ` (${e.about}) by ${actor(e.actor)}: ${e.summary}`,
        el('div', { class: 'muted' }, 'then ', badge(e.status), ' ', el('code', { text: list(e.effective_permissions, 'no permissions') })));
    case 'request':
      return el('li', { class: 'request' }, at, `${e.method} ${e.path} → ${e.status ?? '…'} from ${e.remote_addr}`,
        el('span', { class: 'muted', text: ` request ${e.request_id}` }));
    case 'verifier_use':
      return el('li', { class: 'verifier-use' }, at, `${e.uses} use(s) at verifier ${e.verifier} from ${e.from}`);
    default:
      return el('li', { text: JSON.stringify(e) });
  }
}
