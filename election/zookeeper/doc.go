// Package zookeeper is election on a ZooKeeper ensemble, wire-compatible
// with Apache Mesos's master contender and detector.
//
// Layout: under the URL's path (zk://host1:2181,host2:2181/apron) each
// contender holds an ephemeral sequential znode named json.info_NNNNNNNNNN
// whose data is its payload — for masters, MasterInfo as JSON, as Mesos
// writes it. The lowest sequence leads. Znodes of other names (Mesos's
// log_replicas, the old protobuf "info_" znodes) are ignored; json.info_
// znodes whose data Options.Validate rejects are skipped with a log line.
// With user:password@ in the URL the session authenticates with the digest
// scheme and znodes get Mesos's ACL (world read, creator all).
//
// go-zookeeper has no election recipe; this one follows ZooKeeper's:
// each contender watches only its predecessor (no herd effect when the
// leader goes), the leader watches its own znode, and session events come
// through go-zookeeper's event callback (its event channel drops events
// when full, so it is left unread). The library never tells a lock holder
// that it lost its lock, so a leader steps down from the callback the
// moment the client leaves the connected state, and a term only starts
// when the session has not changed while the contender looked.
//
// Timing: with session timeout T, a leader cut off by the network notices
// after about 2T/3 (go-zookeeper's read timeout) and steps down; the
// server expires its session after T, deletes the znode, and the next
// contender is told at once. A killed leader's successor leads after
// about T (about 1.9 s for T = 2 s here; BenchmarkFailover measures it).
// A ZooKeeper server that needs only a reconnect to another server of the
// ensemble keeps the session: the leader leads again, in a new Term, with
// the same znode.
//
// The servers must allow the session timeout: ZooKeeper bounds it to
// [2, 20] × tickTime unless minSessionTimeout/maxSessionTimeout say
// otherwise (tickTime 2000 ms gives at least 4 s).
package zookeeper
