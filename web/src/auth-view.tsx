// Sign in (naming this device) or create an account, then sign in with it.
import { useState } from 'preact/hooks';
import { login, register } from '../../client/http.js';
import { describeError } from './describe-error.js';
import { apiBase, defaultDeviceName, saveSession, type Session } from './session.js';

export function AuthView(props: { onSignedIn: (s: Session) => void; notice?: string }) {
  const [mode, setMode] = useState<'login' | 'register'>('login');
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [name, setName] = useState('');
  const [device, setDevice] = useState(defaultDeviceName());
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    const uname = username.trim().toLowerCase();
    try {
      if (mode === 'register') {
        try {
          await register(apiBase(), { username: uname, password, ...(name.trim() ? { name: name.trim() } : {}) });
        } catch (err) {
          setError(describeError(err, 'Creating the account'));
          return;
        }
      }
      const res = await login(apiBase(), { username: uname, password, device: device.trim() || defaultDeviceName() });
      const s: Session = { token: res.token, user: res.user, device: res.device, username: uname, deviceName: device.trim() || defaultDeviceName() };
      saveSession(s);
      props.onSignedIn(s);
    } catch (err) {
      setError(describeError(err, 'Signing in').replace('you are not signed in', 'wrong username or password'));
    } finally {
      setBusy(false);
    }
  };

  const registering = mode === 'register';
  return (
    <main class="auth">
      <h1>Parley</h1>
      {props.notice && <p class="notice" role="status">{props.notice}</p>}
      <form onSubmit={submit} aria-labelledby="auth-title">
        <h2 id="auth-title">{registering ? 'Create an account' : 'Sign in'}</h2>
        <label>
          Username
          <input name="username" autoComplete="username" required minLength={3} maxLength={32} pattern="[a-zA-Z0-9_.]{3,32}" value={username} onInput={(e) => setUsername(e.currentTarget.value)} />
        </label>
        <label>
          Password
          <input name="password" type="password" autoComplete={registering ? 'new-password' : 'current-password'} required minLength={8} maxLength={128} value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
        </label>
        {registering && (
          <label>
            Display name (optional)
            <input name="name" autoComplete="nickname" maxLength={64} value={name} onInput={(e) => setName(e.currentTarget.value)} />
          </label>
        )}
        <label>
          This device's name
          <input name="device" maxLength={64} value={device} onInput={(e) => setDevice(e.currentTarget.value)} />
        </label>
        {error && <p class="error" role="alert">{error}</p>}
        <button type="submit" disabled={busy}>{registering ? 'Create account' : 'Sign in'}</button>
      </form>
      <p>
        {registering ? 'Have an account? ' : 'New here? '}
        <button type="button" class="link" onClick={() => { setMode(registering ? 'login' : 'register'); setError(''); }}>
          {registering ? 'Sign in' : 'Create an account'}
        </button>
      </p>
    </main>
  );
}
