/**
 * Calling the REST API. Every failure becomes an {@link ApiError} whose message a person can
 * read: the problem details' `detail` (RFC 9457), plus the allowed moves of a refused status
 * change. Nothing is swallowed here; callers show the message (see notices.js).
 * @module api
 */

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
 * Send a request to the API and return its JSON body (`null` for 204).
 * @param {string} path e.g. `/api/v1/tasks/`
 * @param {{method?: string, body?: any, signal?: AbortSignal}} [options]
 * @returns {Promise<any>}
 * @throws {ApiError} for a non-2xx answer or an unreachable server
 */
export async function api(path, { method = 'GET', body, signal } = {}) {
  const headers = { Accept: 'application/json' };
  const init = { method, headers, signal };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error && error.name === 'AbortError') throw error;
    throw new ApiError(0, 'The server cannot be reached; is Taskline running?');
  }
  if (response.status === 204) return null;
  const type = response.headers.get('content-type') || '';
  let payload = null;
  if (type.includes('json')) payload = await response.json().catch(() => null);
  else payload = await response.text().catch(() => '');
  if (!response.ok) {
    throw new ApiError(response.status, describeProblem(response.status, response.statusText, payload), payload);
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
