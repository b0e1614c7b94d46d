/**
 * Calling the REST API. Every failure becomes an {@link ApiError} whose message a person can
 * read: the problem details' `detail` (RFC 9457), plus the allowed moves of a refused status
 * change. Nothing is swallowed here; callers show the message (see notices.js).
 *
 * A 401 or 403 from anything but the sign-in routes (`/api/v1/auth/…`) is also reported to
 * the listener set with {@link onAuthProblem} (the app shows the sign-in view on a 401 and
 * reloads what the person may do on a 403); the caller still gets the error.
 * @module api
 */

/** Paths whose 401s are answers to the person (a wrong password), not a lost session. */
const AUTH_PATHS = '/api/v1/auth/';

/** @type {((error: ApiError) => void)|null} */
let authListener = null;

/**
 * Be told of every 401 and 403 the API answers (outside the sign-in routes).
 * @param {((error: ApiError) => void)|null} listener
 */
export function onAuthProblem(listener) {
  authListener = listener;
}

/** An HTTP request that failed: `status` is 0 when the server could not be reached. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} message
   * @param {any} [problem] the problem details body, when there was one
   */
  constructor(status, message, problem = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.problem = problem;
  }
}

/**
 * A readable sentence for a failed response.
 * @param {number} status
 * @param {string} statusText
 * @param {any} body parsed JSON (problem details) or text
 * @returns {string}
 */
export function describeProblem(status, statusText, body) {
  if (body && typeof body === 'object') {
    let text = body.detail || body.title || `HTTP ${status}`;
    if (Array.isArray(body.allowed) && body.allowed.length) {
      text += ` (allowed: ${body.allowed.join(', ')})`;
    }
    return text;
  }
  const reason = statusText ? ` ${statusText}` : '';
  return `The server answered ${status}${reason}.`;
}

/**
 * The `If-Match` value for a task's version (its ETag, `"3"`), or `*` as it is.
 * @param {number|string} version
 * @returns {string}
 */
export function ifMatchValue(version) {
  return typeof version === 'number' ? `"${version}"` : version;
}

/**
 * Whether a failed change was refused because the task changed since the version it was
 * made from (412: someone else changed it meanwhile).
 * @param {unknown} error
 * @returns {boolean}
 */
export function isStale(error) {
  return error instanceof ApiError && error.status === 412;
}

/**
 * Send a request to the API and return its JSON body (`null` for 204). A body is sent as
 * JSON with `Content-Type: application/json` (the server refuses other bodies with 415); the
 * browser adds `Origin` to unsafe requests and the session cookie (same origin). `ifMatch`
 * makes a change conditional: the task's `version` the person saw (a 412 {@link isStale}
 * when it changed since), or `*` (any version; the server may require an If-Match).
 * @param {string} path e.g. `/api/v1/tasks/`
 * @param {{method?: string, body?: any, signal?: AbortSignal, ifMatch?: number|string|null}} [options]
 * @returns {Promise<any>}
 * @throws {ApiError} for a non-2xx answer or an unreachable server
 */
export async function api(path, { method = 'GET', body, signal, ifMatch = null } = {}) {
  /** @type {Record<string, string>} */
  const headers = { Accept: 'application/json' };
  if (ifMatch !== null && ifMatch !== undefined) headers['If-Match'] = ifMatchValue(ifMatch);
  /** @type {RequestInit} */
  const init = { method, headers, signal };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error instanceof Error && error.name === 'AbortError') throw error;
    throw new ApiError(0, 'The server cannot be reached; is Taskline running?');
  }
  if (response.status === 204) return null;
  const type = response.headers.get('content-type') || '';
  let payload = null;
  if (type.includes('json')) payload = await response.json().catch(() => null);
  else payload = await response.text().catch(() => '');
  if (!response.ok) {
    const error = new ApiError(response.status, describeProblem(response.status, response.statusText, payload), payload);
    if ((error.status === 401 || error.status === 403) && !path.startsWith(AUTH_PATHS)) authListener?.(error);
    throw error;
  }
  return payload;
}

/**
 * Build a query string from the non-empty values of `params`.
 * @param {Record<string, string|number|null|undefined>} params
 * @returns {string} `""` or `"?a=1&b=2"`
 */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== '') search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}
