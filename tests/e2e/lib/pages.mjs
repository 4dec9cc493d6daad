// What every browser test does with a page: open the demo app with its console and errors
// kept in `logs`, and sign up through the form.
export const PORT_BASE = Number(process.env.TH_PORT_BASE || 8080);
export const BASE_URL = `http://127.0.0.1:${PORT_BASE}`;
export const T = 20000; // default wait for anything the other browser should see

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
