// Drives the share page (`GET /s/{id}`, served by the Worker) in real headless Chromium, as a
// person would: open the link, look, type the passphrase if asked, click Reveal, click Copy.
// Prints one JSON object with what it saw; the Rust e2e test (tests/tests/api/share_browser.rs)
// decides what is right. Screenshots go to --screenshots DIR.
//
//   node tests/browser/share_page.mjs --url URL --screenshots DIR [--passphrase P] [--no-reveal]
//
// Chromium is Debian's, launched by common.mjs.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { launch, parseFlags, text, visible } from './common.mjs';

function parseArgs(argv) {
    const args = parseFlags(argv, ['no_reveal']);
    args.reveal = !args.no_reveal;
    if (!args.url || !args.screenshots) throw new Error('--url and --screenshots are required');
    return args;
}

async function main() {
    const args = parseArgs(process.argv.slice(2));
    mkdirSync(args.screenshots, { recursive: true });
    const browser = await launch();
    const result = { screenshots: [], console_errors: [] };
    try {
        const origin = new URL(args.url).origin;
        const context = await browser.newContext();
        await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin });
        const page = await context.newPage();
        page.on('console', (message) => {
            if (message.type() === 'error') result.console_errors.push(message.text());
        });
        page.on('pageerror', (error) => result.console_errors.push(String(error)));

        const response = await page.goto(args.url, { waitUntil: 'load' });
        result.status = response.status();
        result.title = await page.title();
        result.loaded_state = await text(page, '#state');
        result.passphrase_field = await visible(page, '#passphrase');
        result.reveal_button = await visible(page, '#reveal');
        const loaded = join(args.screenshots, 'share-page-loaded.png');
        await page.screenshot({ path: loaded, fullPage: true });
        result.screenshots.push(loaded);

        if (args.reveal && result.reveal_button) {
            if (args.passphrase !== undefined && result.passphrase_field) {
                await page.fill('#passphrase', args.passphrase);
            }
            await page.click('#reveal');
            // Either the value appears or the state message changes: whichever comes first.
            await page.waitForFunction(
                (before) => {
                    const value = document.querySelector('#secret-value');
                    const state = document.querySelector('#state');
                    const shown = value && value.offsetParent !== null && value.textContent.length > 0;
                    return shown || (state && state.textContent.trim() !== before);
                },
                result.loaded_state,
                { timeout: 15000 },
            );
            result.revealed_value = (await visible(page, '#secret-value'))
                ? await text(page, '#secret-value')
                : null;
            result.revealed_state = await text(page, '#state');
            if (result.revealed_value !== null && (await visible(page, '#copy'))) {
                await page.click('#copy');
                result.clipboard = await page.evaluate(() => navigator.clipboard.readText());
            }
            const revealed = join(args.screenshots, 'share-page-revealed.png');
            await page.screenshot({ path: revealed, fullPage: true });
            result.screenshots.push(revealed);
        }
    } finally {
        await browser.close();
    }
    process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((error) => {
    process.stderr.write(`share_page.mjs: ${error.stack || error}\n`);
    process.exit(1);
});
