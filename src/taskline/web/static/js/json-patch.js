/**
 * JSON Patch (RFC 6902) over JSON Pointer (RFC 6901), applied to a copy: either every
 * operation applies and the new document is returned, or a {@link PatchError} is thrown and
 * the input is untouched — the caller then refetches the state instead of showing a guess.
 *
 * It applies patches exactly as the server does (`taskline.domain.json_patch`;
 * `tests/json_patch_cases.json` holds the cases both follow): `add`, `replace` and `test` need
 * a `value` member, `move` and `copy` a `from`; other members are ignored; an empty patch
 * changes nothing; a `~` in a pointer is followed by `0` or `1`; removing the whole document
 * is refused. The size and depth limits are the server's to enforce: a patch reaches the page
 * only after the server stored it.
 * @module json-patch
 */

/** A patch that does not apply to the document (bad path, failed `test`, bad op). */
export class PatchError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'PatchError';
  }
}

const INDEX = /^(0|[1-9][0-9]*)$/;
const BAD_ESCAPE = /~(?![01])/;
const OPERATIONS = new Set(['add', 'remove', 'replace', 'move', 'copy', 'test']);
/** @type {(object: object, key: string) => boolean} */
const has = (object, key) => Object.prototype.hasOwnProperty.call(object, key);

/**
 * Split a JSON Pointer into unescaped reference tokens (RFC 6901 §3–4).
 * @param {string} pointer `""` is the whole document
 * @returns {string[]}
 */
export function parsePointer(pointer) {
  if (pointer === '') return [];
  if (typeof pointer !== 'string' || pointer[0] !== '/') {
    throw new PatchError(`${JSON.stringify(pointer)} is not a JSON Pointer`);
  }
  const tokens = pointer.slice(1).split('/');
  if (tokens.some((token) => BAD_ESCAPE.test(token))) {
    throw new PatchError(`in ${JSON.stringify(pointer)}, '~' is not followed by 0 or 1`);
  }
  return tokens.map((token) => token.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/**
 * Apply `operations` to a deep copy of `document`.
 * @param {any} document
 * @param {Array<{op: string, path: string, value?: any, from?: string}>} operations
 * @returns {any} the patched copy
 * @throws {PatchError}
 */
export function applyPatch(document, operations) {
  if (!Array.isArray(operations)) throw new PatchError('a patch is a list of operations');
  let root = structuredClone(document);
  for (const operation of operations) root = applyOperation(root, operation);
  return root;
}

/**
 * @param {any} root
 * @param {{op: string, path: string, value?: any, from?: string}} operation
 * @returns {any} the new root (only `""` paths replace it)
 */
function applyOperation(root, operation) {
  if (operation === null || typeof operation !== 'object' || Array.isArray(operation)) {
    throw new PatchError('an operation is an object');
  }
  const { op } = operation;
  if (!OPERATIONS.has(op)) throw new PatchError(`unknown operation ${JSON.stringify(op)}`);
  if (!has(operation, 'path')) throw new PatchError(`'${op}' needs a 'path' member`);
  const tokens = parsePointer(operation.path);
  if ((op === 'add' || op === 'replace' || op === 'test') && !has(operation, 'value')) {
    throw new PatchError(`'${op}' needs a 'value' member`);
  }
  let fromPath = '';
  if (op === 'move' || op === 'copy') {
    if (typeof operation.from !== 'string') throw new PatchError(`'${op}' needs a 'from' member (a JSON Pointer)`);
    fromPath = operation.from;
  }
  switch (op) {
    case 'add':
      return add(root, tokens, structuredClone(operation.value));
    case 'remove':
      return remove(root, tokens).root;
    case 'replace':
      get(root, tokens); // must exist
      return replace(root, tokens, structuredClone(operation.value));
    case 'move': {
      const from = parsePointer(fromPath);
      if (isPrefix(from, tokens) && from.length === tokens.length) {
        get(root, from); // must exist; moving a value onto itself changes nothing
        return root;
      }
      if (isPrefix(from, tokens)) {
        throw new PatchError(`cannot move ${fromPath} into its own child ${operation.path}`);
      }
      const taken = remove(root, from);
      return add(taken.root, tokens, taken.value);
    }
    case 'copy':
      return add(root, tokens, structuredClone(get(root, parsePointer(fromPath))));
    case 'test':
      if (!deepEqual(get(root, tokens), operation.value)) {
        throw new PatchError(`test failed at ${operation.path}`);
      }
      return root;
    default:
      throw new PatchError(`unknown operation ${JSON.stringify(op)}`);
  }
}

/**
 * The value at `tokens`.
 * @param {any} root
 * @param {string[]} tokens
 * @returns {any}
 */
export function get(root, tokens) {
  let node = root;
  for (const token of tokens) {
    if (Array.isArray(node)) {
      if (!INDEX.test(token) || Number(token) >= node.length) {
        throw new PatchError(`no array element ${token}`);
      }
      node = node[Number(token)];
    } else if (node !== null && typeof node === 'object') {
      if (!Object.prototype.hasOwnProperty.call(node, token)) {
        throw new PatchError(`no member ${JSON.stringify(token)}`);
      }
      node = node[token];
    } else {
      throw new PatchError(`cannot look up ${JSON.stringify(token)} inside a ${typeof node}`);
    }
  }
  return node;
}

/**
 * @param {any} root
 * @param {string[]} tokens at least one
 * @returns {{parent: any, key: string}}
 */
function parentOf(root, tokens) {
  return { parent: get(root, tokens.slice(0, -1)), key: tokens[tokens.length - 1] ?? '' };
}

/**
 * Add `value` at `tokens` (an array index inserts, `-` appends, a member is set).
 * @param {any} root
 * @param {string[]} tokens
 * @param {unknown} value
 * @returns {any} the new root
 */
function add(root, tokens, value) {
  if (tokens.length === 0) return value;
  const { parent, key } = parentOf(root, tokens);
  if (Array.isArray(parent)) {
    if (key === '-') parent.push(value);
    else if (INDEX.test(key) && Number(key) <= parent.length) parent.splice(Number(key), 0, value);
    else throw new PatchError(`cannot add at array index ${key}`);
  } else if (parent !== null && typeof parent === 'object') {
    setMember(parent, key, value);
  } else {
    throw new PatchError(`cannot add ${JSON.stringify(key)} to a ${typeof parent}`);
  }
  return root;
}

/**
 * An own member, even for keys such as `__proto__` that assignment treats specially.
 * @param {object} object
 * @param {string} key
 * @param {unknown} value
 */
function setMember(object, key, value) {
  Object.defineProperty(object, key, { value, writable: true, enumerable: true, configurable: true });
}

/**
 * Remove the value at `tokens` (which must exist).
 * @param {any} root
 * @param {string[]} tokens
 * @returns {{root: any, value: any}} the new root and the value removed
 */
function remove(root, tokens) {
  if (tokens.length === 0) throw new PatchError('cannot remove the whole document (replace it)');
  const value = get(root, tokens);
  const { parent, key } = parentOf(root, tokens);
  if (Array.isArray(parent)) parent.splice(Number(key), 1);
  else delete parent[key];
  return { root, value };
}

/**
 * Replace the value at `tokens` (which must exist) by `value`.
 * @param {any} root
 * @param {string[]} tokens
 * @param {unknown} value
 * @returns {any} the new root
 */
function replace(root, tokens, value) {
  if (tokens.length === 0) return value;
  const { parent, key } = parentOf(root, tokens);
  if (Array.isArray(parent)) parent[Number(key)] = value;
  else setMember(parent, key, value);
  return root;
}

/**
 * Whether `prefix` is the start of `tokens` (or all of them).
 * @param {string[]} prefix
 * @param {string[]} tokens
 * @returns {boolean}
 */
function isPrefix(prefix, tokens) {
  return prefix.every((token, i) => tokens[i] === token);
}

/**
 * Structural equality of JSON values (object key order does not matter).
 * @param {any} a
 * @param {any} b
 * @returns {boolean}
 */
export function deepEqual(a, b) {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === b.length && a.every((item, i) => deepEqual(item, b[i]));
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((key) => Object.prototype.hasOwnProperty.call(b, key) && deepEqual(a[key], b[key]));
}
