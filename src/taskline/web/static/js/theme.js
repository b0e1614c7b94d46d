/**
 * Light and dark: follow the system (prefers-color-scheme) unless the person picks one with
 * the toggle; the choice is remembered in localStorage.
 * @module theme
 */

/** @typedef {'system'|'light'|'dark'} Theme */

const KEY = 'taskline.theme';
/** @type {Theme[]} */
const ORDER = ['system', 'light', 'dark'];
/** @type {Record<Theme, string>} */
const LABELS = { system: 'Theme: system', light: 'Theme: light', dark: 'Theme: dark' };

/**
 * Whether a stored value is a theme.
 * @param {string|null} value
 * @returns {value is Theme}
 */
function isTheme(value) {
  return ORDER.some((theme) => theme === value);
}

/**
 * The stored choice, or "system".
 * @returns {Theme}
 */
export function storedTheme() {
  try {
    const value = localStorage.getItem(KEY);
    return isTheme(value) ? value : 'system';
  } catch {
    return 'system';
  }
}

/**
 * Apply a theme to the page (`system` removes the override).
 * @param {Theme} theme
 */
export function applyTheme(theme) {
  const root = document.documentElement;
  if (theme === 'system') delete root.dataset.theme;
  else root.dataset.theme = theme;
}

/**
 * Wire the toggle button: each press moves system → light → dark → system.
 * @param {HTMLButtonElement} button
 */
export function setUpThemeToggle(button) {
  let theme = storedTheme();
  const show = () => {
    applyTheme(theme);
    button.textContent = LABELS[theme];
    button.setAttribute('aria-label', `${LABELS[theme]} (press to change)`);
    button.dataset.theme = theme;
  };
  button.addEventListener('click', () => {
    theme = ORDER[(ORDER.indexOf(theme) + 1) % ORDER.length] ?? 'system';
    try {
      localStorage.setItem(KEY, theme);
    } catch {
      /* private mode: the choice lasts for this page only */
    }
    show();
  });
  show();
}
