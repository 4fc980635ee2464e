// Why the single binary will not run here (an unsuitable system, an unsafe cache directory):
// said in one plain line, without a stack trace, exit code 1.
export class BinaryRefusal extends Error {
  override name = 'BinaryRefusal';
}
