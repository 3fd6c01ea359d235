// Times, spans and permissions as people read them.

const units = [
  ['d', 86400], ['h', 3600], ['min', 60], ['s', 1],
];

/** Milliseconds since the epoch of an RFC 3339 time (latchd may send nanoseconds). */
export function millis(iso) {
  return Date.parse(iso.replace(/(\.\d{3})\d+/, '$1'));
}

/** "in 3 d" / "5 h ago" for an RFC 3339 time. */
export function relative(iso, now = Date.now()) {
  if (!iso) return '';
  const seconds = Math.round((millis(iso) - now) / 1000);
  const size = Math.abs(seconds);
  const [unit, length] = units.find(([, l]) => size >= l) || ['s', 1];
  const count = Math.floor(size / length);
  return seconds >= 0 ? `in ${count} ${unit}` : `${count} ${unit} ago`;
}

/** "2026-12-07 14:03:12 UTC" for an RFC 3339 time; "never" for none. */
export function when(iso, none = 'never') {
  if (!iso) return none;
  return `${iso.replace('T', ' ').replace(/\.\d+/, '').replace(/Z$|\+00:00$/, '')} UTC`;
}

/** when() and relative() together. */
export function whenRelative(iso, none = 'never') {
  return iso ? `${when(iso)} (${relative(iso)})` : none;
}

export function list(values, none = '—') {
  return values && values.length ? values.join(' ') : none;
}

/** Who did it: an ActorView. */
export function actor(view) {
  if (!view) return '';
  if (view.kind === 'system') return 'system';
  const name = view.account_name || view.account_id || 'unknown account';
  return view.token_id ? `${name} (token ${view.token_id.slice(0, 8)}…)` : name;
}

/** A datetime-local input's value as RFC 3339 UTC; '' when empty. */
export function fromLocalInput(value) {
  if (!value) return '';
  const time = new Date(value);
  return Number.isNaN(time.getTime()) ? '' : time.toISOString().replace(/\.\d+Z$/, 'Z');
}
