// TLS without a proxy (TLS_CERT/TLS_KEY): https and wss on the main port from uWS's SSLApp, and a
// certificate reload (SIGHUP, wired in src/server.ts) that keeps every open connection.
//
// uWS cannot swap the certificate of an SSLApp. Its SNI contexts can be replaced
// (removeServerName + addServerName), but removeServerName frees the name's route table while a
// keep-alive HTTPS connection of that name still points at it: the next request on it crashes
// the process (tried: SIGSEGV). So a reload builds a new SSLApp with the new files, replays every
// route registered so far onto it, listens with it on the same port (uSockets sets SO_REUSEPORT
// and SO_REUSEADDR when it listens on a given port, so both apps listen for a moment), then closes
// the old listening socket. The old apps keep serving the sockets they accepted until those
// close; `publish` reaches the subscribers of every app. What a reload can drop: a connection the
// kernel had queued on the old listening socket but uWS had not yet accepted at that instant (it
// is reset; the client connects again). The admin port (ADMIN_PORT) stays plain HTTP.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { ConfigError } from '../config.js';
import { uws, type UWS } from './uws.js';

export interface TlsFiles {
  certFile: string;
  keyFile: string;
}

/** What the log says about the certificate in use. */
export interface CertificateInfo {
  subject: string;
  /** DNS and IP names the certificate is valid for */
  subjectAltName: string;
  validFrom: string;
  validTo: string;
  fingerprint256: string;
}

/** The route registrations of a TemplatedApp: replayed onto each new app. */
const ROUTE_METHODS = new Set<string | symbol>(['get', 'post', 'put', 'patch', 'del', 'head', 'options', 'any', 'connect', 'trace', 'ws']);

function readPem(file: string, option: 'TLS_CERT' | 'TLS_KEY'): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${option}: cannot read ${file}: ${(err as Error).message}`);
  }
}

/**
 * Reads and checks the pair: a PEM certificate (its chain may follow) and an unencrypted PEM
 * private key that belongs to it. Throws ConfigError naming the option and the file.
 */
export function readCertificate(files: TlsFiles): { info: CertificateInfo; pems: string } {
  const certPem = readPem(files.certFile, 'TLS_CERT');
  const keyPem = readPem(files.keyFile, 'TLS_KEY');
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    throw new ConfigError(`TLS_CERT: ${files.certFile} holds no PEM certificate (${(err as Error).message})`);
  }
  let key;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw new ConfigError(`TLS_KEY: ${files.keyFile} holds no unencrypted PEM private key (${(err as Error).message})`);
  }
  if (!cert.checkPrivateKey(key)) throw new ConfigError(`TLS_KEY: ${files.keyFile} is not the private key of the certificate in ${files.certFile}`);
  const info = { subject: cert.subject.replace(/\n/g, ', '), subjectAltName: cert.subjectAltName ?? '', validFrom: cert.validFrom, validTo: cert.validTo, fingerprint256: cert.fingerprint256 };
  return { info, pems: certPem + keyPem };
}

/**
 * The main port's SSLApp, behind one TemplatedApp (`app`) the server mounts its routes on:
 * route registrations go to the current app and are recorded; `publish` and `numSubscribers`
 * span every app that may still hold sockets; everything else goes to the current app.
 */
export class TlsApps {
  readonly app: UWS.TemplatedApp;
  private readonly apps: UWS.TemplatedApp[] = [];
  private readonly routes: Array<[string | symbol, unknown[]]> = [];
  private current: UWS.TemplatedApp;
  private listenSocket: UWS.us_listen_socket | null = null;
  private host = '';
  private port = 0;
  private closed = false;
  private certificate: CertificateInfo;

  constructor(private readonly files: TlsFiles, private readonly log: Logger) {
    const { app, info } = this.build();
    this.current = app;
    this.apps.push(app);
    this.certificate = info;
    this.warnIfOutdated(info);
    const apps = this.apps;
    const self = this;
    this.app = new Proxy(app, {
      get(_target, prop) {
        if (ROUTE_METHODS.has(prop)) {
          return (...args: unknown[]) => {
            self.routes.push([prop, args]);
            (self.current as unknown as Record<string | symbol, (...a: unknown[]) => unknown>)[prop]!(...args);
            return self.app;
          };
        }
        if (prop === 'publish') {
          return (topic: UWS.RecognizedString, message: UWS.RecognizedString, isBinary?: boolean, compress?: boolean) => {
            let any = false;
            for (const a of apps) any = a.publish(topic, message, isBinary, compress) || any;
            return any;
          };
        }
        if (prop === 'numSubscribers') return (topic: UWS.RecognizedString) => apps.reduce((n, a) => n + a.numSubscribers(topic), 0);
        const value = (self.current as unknown as Record<string | symbol, unknown>)[prop];
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(self.current) : value;
      },
    });
  }

  /** The certificate in use. */
  get info(): CertificateInfo {
    return this.certificate;
  }

  /** Listens on host:port (0: any free port); answers the port. Throws when it cannot. */
  listen(host: string, port: number): number {
    if (port === 0) {
      // uSockets sets SO_REUSEPORT/SO_REUSEADDR only when given a port, and a reload needs them
      // (the new app listens before the old one stops): find a free port, then listen on it.
      const probe = listenNow(this.current, host, 0);
      if (!probe) throw new Error(`cannot listen on ${host}:0`);
      port = uws.us_socket_local_port(probe as never);
      uws.us_listen_socket_close(probe as never);
    }
    const ls = listenNow(this.current, host, port);
    if (!ls) throw new Error(`cannot listen on ${host}:${port}`);
    this.listenSocket = ls;
    this.host = host;
    this.port = port;
    return port;
  }

  /**
   * Reads the files again and moves the port to a new SSLApp with them. Throws (the current
   * certificate stays in use) when the files are unreadable or do not match, or after stop.
   */
  reload(): CertificateInfo {
    if (this.closed || !this.listenSocket) throw new Error('the server is not listening');
    const { app, info } = this.build();
    for (const [method, args] of this.routes) (app as unknown as Record<string | symbol, (...a: unknown[]) => unknown>)[method]!(...args);
    const ls = listenNow(app, this.host, this.port);
    if (!ls) throw new Error(`cannot listen on ${this.host}:${this.port} a second time for the new certificate; the previous one stays in use`);
    uws.us_listen_socket_close(this.listenSocket as never);
    this.listenSocket = ls;
    this.current = app;
    this.apps.push(app);
    this.certificate = info;
    this.warnIfOutdated(info);
    return info;
  }

  /** Stops listening (open sockets are closed by the gateway). */
  close(): void {
    this.closed = true;
    if (this.listenSocket) uws.us_listen_socket_close(this.listenSocket as never);
    this.listenSocket = null;
  }

  /**
   * An SSLApp from the files, checked first. uWS reads the files by name itself, so they are
   * read once more afterwards: a pair replaced while uWS read it is refused, not served half-new.
   */
  private build(): { app: UWS.TemplatedApp; info: CertificateInfo } {
    const { info, pems } = readCertificate(this.files);
    let app: UWS.TemplatedApp;
    try {
      app = uws.SSLApp({ cert_file_name: this.files.certFile, key_file_name: this.files.keyFile });
    } catch (err) {
      throw new ConfigError(`TLS_CERT/TLS_KEY: uWebSockets.js refused ${this.files.certFile} and ${this.files.keyFile}: ${String(err)}`);
    }
    if (readCertificate(this.files).pems !== pems) throw new ConfigError(`TLS_CERT/TLS_KEY: ${this.files.certFile} or ${this.files.keyFile} changed while being loaded; try again`);
    return { app, info };
  }

  private warnIfOutdated(info: CertificateInfo): void {
    const now = Date.now();
    if (Date.parse(info.validTo) < now) this.log.warn({ certificate: info }, 'the TLS certificate has expired');
    else if (Date.parse(info.validFrom) > now) this.log.warn({ certificate: info }, 'the TLS certificate is not valid yet');
  }
}

/** uWS calls the listen callback before listen() returns. */
function listenNow(app: UWS.TemplatedApp, host: string, port: number): UWS.us_listen_socket | false {
  let got: UWS.us_listen_socket | false = false;
  app.listen(host, port, (ls) => {
    got = ls;
  });
  return got;
}
