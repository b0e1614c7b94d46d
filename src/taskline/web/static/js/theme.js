/**
 * Light and dark: follow the system (prefers-color-scheme) unless the person picks one with
 * the toggle; the choice is remembered in localStorage.
 * @module theme
 */

const KEY = 'taskline.theme';
const ORDER = ['system', 'light', 'dark'];
const LABELS = { system: 'Theme: system', light: 'Theme: light', dark: 'Theme: dark' };

/**
 * The stored choice, or "system".
 * @returns {'system'|'light'|'dark'}
 */
export function storedTheme() {
  try {
    const value = localStorage.getItem(KEY);
    return ORDER.includes(value) ? /** @type {any} */ (value) : 'system';
  } catch {
    return 'system';
  }
}

/**
 * Apply a theme to the page (`system` removes the override).
 * @param {'system'|'light'|'dark'} theme
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
    theme = /** @type {any} */ (ORDER[(ORDER.indexOf(theme) + 1) % ORDER.length]);
    try {
      localStorage.setItem(KEY, theme);
    } catch {
      /* private mode: the choice lasts for this page only */
    }
    show();
  });
  show();
}
