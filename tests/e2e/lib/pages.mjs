// What every browser test does with a page: open the demo app with its console and errors
// kept in `logs`, and sign up through the form; the settings they share and their users.
import { mkdirSync } from 'node:fs';
import path from 'node:path';

export const PORT_BASE = Number(process.env.TH_PORT_BASE || 8080);
export const BASE_URL = `http://127.0.0.1:${PORT_BASE}`;
export const T = 20000; // default wait for anything the other browser should see
export const SHOTS = process.env.TH_E2E_SHOTS || path.join(process.cwd(), 'e2e-shots');
export const CHROMIUM = process.env.TH_CHROMIUM || '/usr/bin/chromium';
mkdirSync(SHOTS, { recursive: true });

// A tag of this run, so that a file's users and communities never meet an earlier run's.
export const RUN = Math.random().toString(36).slice(2, 8);
// A user of this run named after `name`: {username, email, display, password}.
export const mkUser = (name) => ({
  username: `${name}_${RUN}`, email: `${name}_${RUN}@example.test`, display: `${name[0].toUpperCase()}${name.slice(1)} ${RUN}`,
  password: 'correct horse battery',
});

// A new page of ctx at the app, its console lines and page errors pushed to logs as `[who …]`.
export async function newPage(ctx, who, logs) {
  const page = await ctx.newPage();
  page.on('console', (m) => logs.push(`[${who} console.${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`[${who} pageerror] ${e.message}`));
  await page.goto(BASE_URL + '/');
  return page;
}

// Signs u {email, username, display, password} up in the form; resolves once the app shows
// and the real-time connection is up.
export async function signUp(page, u) {
  await page.click('#tab-signup');
  await page.fill('#signup-form [name=email]', u.email);
  await page.fill('#signup-form [name=username]', u.username);
  await page.fill('#signup-form [name=display_name]', u.display);
  await page.fill('#signup-form [name=password]', u.password);
  await page.click('#signup-form button[type=submit]');
  await page.waitForSelector('#app-view:not([hidden])', { timeout: T });
  await page.waitForSelector('#conn-status.online', { timeout: T });
}
