// Entry of the web chat app (README "Web app"): renders the shell into #app.
import { render } from 'preact';
import { App } from './app.js';

render(<App />, document.getElementById('app')!);
