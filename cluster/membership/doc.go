// Package membership tells a Skiff node who its peers are and when they die.
//
// It is a thin wrapper over hashicorp/memberlist (SWIM gossip). Each node
// advertises a small [Meta] (its id and its gRPC, Raft and HTTP addresses)
// that others read from [Membership.Members]. Joining needs any one live seed
// address; [Start] keeps retrying in the background, so nodes may start in
// any order.
//
// # What this package adds to memberlist
//
//   - Dead and left members stay listed, with the local time they entered
//     that state ([Member.Since]), so a controller can act on "dead for longer
//     than --replace-after". memberlist itself forgets them after
//     GossipToTheDeadTime (15-30s) and its Members() hides them.
//   - Dead and Left are told apart. memberlist v0.6.0 reports both through
//     EventDelegate.NotifyLeave and never fills Node.State (the field is
//     shadowed by an unexported one; memberlist PR #321), so a node that
//     leaves first re-advertises its meta with a "leaving" mark, waits for
//     that to be gossiped, and only then broadcasts memberlist's leave.
//   - A node restarted with the same id at a new address gets its name back
//     quickly: peers that saw the conflicting address push-pull with the new
//     address as soon as memberlist allows the reclaim (see
//     [Config.DeadNodeReclaimTime]) instead of waiting for the next periodic
//     push-pull (up to 30s).
//   - Events fan out to any number of subscribers without ever blocking
//     gossip, and [Membership.Changed] gives loops a cheap "something
//     changed, recompute from Members()" signal.
//
// # Encryption and cluster names
//
// With [Config.Keys], gossip is encrypted with AES-256 keys from
// memberlist's keyring and both directions are verified, so a node
// without a key the cluster holds never joins; [Config.ClusterName] labels
// every packet so that clusters sharing a network never merge. Keys rotate
// live, one node at a time ([Membership.InstallKey], [Membership.UseKey],
// [Membership.RemoveKey]); each change is persisted to
// [Config.KeyringFile] first. Key files: [ParseKeyFile], [WriteKeyFile].
//
// # Suspect
//
// memberlist v0.6.0 gives no callback when a node becomes suspect, so
// [StateSuspect] exists for API stability but is not reported today: a
// member stays [StateAlive] until memberlist declares it dead.
package membership
