// The console's one way to reach latchd: same-origin requests to the /v1
// API, riding the session cookie (HttpOnly: this script never sees it) and
// the session's CSRF token, which lives in this module's memory only.

let csrf = null;
let signedOut = () => {};

/** Tells the console once that the session ended (a page may have several requests in flight). */
function ended(reason) {
  if (csrf === null) return;
  csrf = null;
  signedOut(reason);
}

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && problem.detail) || `latchd answered ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

/** Called with a reason when latchd says the session is no longer valid. */
export function onSignedOut(handler) {
  signedOut = handler;
}

async function send(method, path, { body, headers = {}, signal } = {}) {
  const all = { Accept: 'application/json', ...headers };
  if (csrf) all['X-Latch-Csrf'] = csrf;
  if (body !== undefined) all['Content-Type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers: all,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store',
    signal,
  });
  const text = await response.text();
  return { response, text };
}

function parse(text) {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** One API request; JSON in, JSON out, problem+json thrown as ApiError. */
export async function api(method, path, options = {}) {
  const { response, text } = await send(method, path, options);
  const data = parse(text);
  if (response.status === 401) ended((data && data.detail) || 'Your session ended; sign in again.');
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const get = (path, options) => api('GET', path, options);

/** A random key (crypto.randomUUID needs HTTPS or localhost). */
function randomKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** A command: a fresh Idempotency-Key makes a retried click safe. */
export function command(method, path, body) {
  return api(method, path, { body, headers: { 'Idempotency-Key': randomKey() } });
}

/** An NDJSON answer (investigations), as an array of its lines. */
export async function lines(path) {
  const { response, text } = await send('GET', path, { headers: { Accept: 'application/x-ndjson' } });
  const data = response.ok ? null : parse(text);
  if (response.status === 401) ended((data && data.detail) || 'Your session ended; sign in again.');
  if (!response.ok) throw new ApiError(response.status, data);
  return text.split('\n').filter((line) => line.trim() !== '').map((line) => JSON.parse(line));
}

/** Signs in with a token; latchd answers with the session (and sets its cookie). */
export async function signIn(token) {
  const response = await fetch('/ui/session', {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' },
    credentials: 'same-origin',
    cache: 'no-store',
  });
  const data = parse(await response.text());
  if (!response.ok) throw new ApiError(response.status, data);
  csrf = data.csrf;
  return data;
}

/** The session this browser already has, or null. */
export async function resume() {
  const response = await fetch('/ui/session', { credentials: 'same-origin', cache: 'no-store' });
  if (!response.ok) return null;
  const data = parse(await response.text());
  csrf = data && data.csrf;
  return data;
}

export async function signOut() {
  try {
    await send('DELETE', '/ui/session');
  } finally {
    csrf = null;
  }
}

/** Query string of the defined values. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}
