// Entry of the web chat app (README "Web app"): renders the shell into #app.
import { render } from 'preact';
import { App } from './app.js';
import { registerServiceWorker } from './desktop-notifications.js';

render(<App />, document.getElementById('app')!);
// The app shell cached for starting offline, and desktop notifications (web/src/service-worker.ts).
void registerServiceWorker();
