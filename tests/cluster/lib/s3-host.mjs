// The s3 host of the cluster: the integration suite's S3 server (s3rver, tests/integration/lib/s3.mjs)
// on ADDRESS:PORT with one bucket, until SIGTERM. tests/cluster/lib/hosts.sh (s3_up) starts it
// inside th-s3; both app hosts' media pools store there.
//   node s3-host.mjs ADDRESS PORT BUCKET
import { startS3 } from '../../integration/lib/s3.mjs';

const [address, portArg, bucket] = process.argv.slice(2);
const port = Number(portArg);
if (!address || !Number.isInteger(port) || port <= 0 || port > 65535 || !bucket) {
  process.stderr.write('usage: node s3-host.mjs ADDRESS PORT BUCKET\n');
  process.exit(2);
}
const s3 = await startS3({ address, port, bucket });
process.stdout.write(`s3: ${s3.endpoint}/${bucket} (${s3.dir})\n`);
const stop = async () => {
  await s3.stop();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
