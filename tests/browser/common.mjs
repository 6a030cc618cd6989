// What the browser scripts share: reading their flags, launching Debian's Chromium offline, and
// reading what a page shows.

import { chromium } from 'playwright-core';

// `--name value` flags into an object; `booleans` name flags that take no value (set to true).
export function parseFlags(argv, booleans = []) {
    const args = {};
    for (let i = 0; i < argv.length; i += 1) {
        const flag = argv[i];
        if (!flag.startsWith('--')) throw new Error(`unexpected argument ${flag}`);
        const name = flag.slice(2).replace(/-/g, '_');
        args[name] = booleans.includes(name) ? true : argv[++i];
    }
    return args;
}

// Chromium is Debian's (/usr/bin/chromium, or OXVAULT_CHROMIUM); playwright-core never
// downloads a browser. The flags keep it from reaching out to Google's hosts, which this
// machine's closed network refuses.
export function launch() {
    return chromium.launch({
        executablePath: process.env.OXVAULT_CHROMIUM || '/usr/bin/chromium',
        args: [
            '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
            '--disable-background-networking', '--disable-component-update', '--disable-sync',
        ],
    });
}

export async function text(page, selector) {
    const element = await page.$(selector);
    return element ? (await element.innerText()).trim() : null;
}

export async function visible(page, selector) {
    const element = await page.$(selector);
    return element ? element.isVisible() : false;
}
