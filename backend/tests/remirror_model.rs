//! The re-mirror protocol's decisions (`backend::redundancy::protocol::{survey, next_step}`),
//! model checked: one image on six nodes. S (the survivor) and L (the lost partner) hold it with
//! the set {S,L} at epoch 1, and L's disk has just failed; T and U can take a new copy; V has
//! room but shares S's power domain; W, in a fifth domain, has room only where a test says so.
//! Every node holding a readable published replica runs the real `survey` on what the others
//! hold now; S drives its copy job with the real `next_step`, the runtime doing each step the way
//! `redundancy/remirror.rs` and `ingest/placement.rs` do. S's job marker (target, epoch) is on
//! disk and survives a crash of S; what S has seen of the others (for how long a replica has
//! been missing) does not.
//!
//! What the environment may do, in every interleaving: L's disk comes back, with its old set;
//! S crashes and restarts, also in the middle of sending (a half-sent copy left on the target);
//! a placed copy fails its verification once; T or U goes down for a while, or for good; the
//! new partner's disk fails after it published, before or after S adopted it; and the grace
//! period of a missing replica runs out (in S's eyes: after a crash of S it must run out again).
//! At most one of T and U is lost for good. S comes back within the node grace, so no other
//! node ever has to copy (checked). Each node sees the others as they are now (a catalog read
//! and the decision taken on it are one step).
//!
//! Checked exhaustively, on the runtime as it is:
//! - there is always a readable replica, and one served while S is up;
//! - no step (a trim, a job step) lowers the served replicas below two once there are two;
//! - a replica is trimmed only when a newer set leaving it out is served whole, by nodes in
//!   two power domains, each holding exactly that set;
//! - S adopts a new set only once the new partner has published a replica;
//! - every set made spans two power domains.
//!
//! And, with gaps 1, 2 and 4 below closed (as the `Runtime` flags model them) and room on W
//! (so that gap 3 does not arise): S adopts only a set its partner holds exactly; and once
//! nothing more happens but new failures (no step to take, no grace to run out, nothing down
//! but for good), two replicas are served in two power domains, both of one set naming them,
//! nothing else is published, and no job is left (also as an `eventually`).
//!
//! The gaps, each shown by a test below with its shortest path. None loses a replica; each
//! leaves a third replica for good, two replicas whose sets disagree, or a job that never ends:
//! 1. a target's stage is that of whatever hidden copy is there: a copy verified for an
//!    abandoned choice of the same target is published under its old set, S adopts the new one;
//! 2. `Rechoose` gives up a target that may have published already; if the job is then dropped
//!    (the partner is back), that copy's set is newer than the one standing and never whole, so
//!    nothing supersedes it;
//! 3. a node holding a readable replica is never chosen as a target: after such a `Rechoose`,
//!    with no other node with room, S's job waits for ever beside a published copy it could use;
//! 4. two choices in one second get one epoch, and sets of one epoch are ordered by their names:
//!    the copy left by the first may sort after the set adopted, and is never superseded.
//!
//! And the properties can fail: a survey that trims as soon as any newer set leaves it out, a
//! job that adopts once the target verified (before it published), and a choice of target in
//! S's own power domain are each caught.

use std::time::Duration;

use backend::redundancy::protocol::{
    next_step, survey, Grace, Holding, JobFacts, Peer, Set, Step, Survey, TargetStage,
};
use stateright::{Checker, Model, Property};

const NAMES: [&str; 6] = ["s", "l", "t", "u", "v", "w"];
const DOMAINS: [&str; 6] = ["one", "two", "three", "four", "one", "five"];
const N: usize = NAMES.len();
const S: usize = 0;
const L: usize = 1;
const T: usize = 2;
const U: usize = 3;
const W: usize = 5;
/// The nodes that may go down or lose their disk (L's disk failed already).
const FALLIBLE: [usize; 2] = [T, U];

const GRACE: Grace = Grace {
    disk: Duration::from_secs(60),
    node: Duration::from_secs(900),
};

fn domain_of(node: &str) -> Option<String> {
    NAMES
        .iter()
        .position(|n| *n == node)
        .map(|i| DOMAINS[i].to_string())
}

fn new_set(epoch: u64, a: usize, b: usize) -> Set {
    Set::new(epoch, vec![NAMES[a].to_string(), NAMES[b].to_string()])
}

/// What one node holds of the image (`placement.rs`: a folder's name is its stage).
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
enum Copy {
    None,
    /// Files arriving; thrown away when the node restarts (`placement::clear_debris`).
    Incoming,
    /// Sealed, hidden, with the manifest (and so the set) the sender sent.
    Placed(Set),
    /// Read back against the manifest, hidden.
    Verified(Set),
    /// In the catalog; served while its disk and node are up.
    Published(Set),
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct Node {
    copy: Copy,
    disk_ok: bool,
    up: bool,
    /// Down for good.
    gone: bool,
}

impl Node {
    fn served(&self) -> Option<&Set> {
        match &self.copy {
            Copy::Published(s) if self.up && self.disk_ok => Some(s),
            _ => None,
        }
    }
}

/// S's job marker (durable), as `remirror::Job`.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct Job {
    lost: String,
    target: Option<usize>,
    epoch: u64,
    /// A target was given up after something was sent to it.
    abandoned: bool,
}

/// Transition properties, remembered once broken.
const TRIM_UNSAFE: u8 = 1;
const DROPPED: u8 = 2;
const ADOPTED_UNPUBLISHED: u8 = 4;
const ADOPTED_OTHER_SET: u8 = 8;

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct World {
    nodes: [Node; N],
    job: Option<Job>,
    /// S's volatile knowledge: which partner it has seen missing for longer than its grace.
    past_grace: [bool; N],
    /// The last epoch S handed out (its clock, in seconds).
    clock: u64,
    adoptions: u8,
    /// Faults still allowed, to keep the state space finite.
    crashes: u8,
    downs: u8,
    losses: u8,
    bad_verifies: u8,
    l_returns: u8,
    broken: u8,
}

/// How a node looks to another: what `Peers::holding` tells apart, for S's grace clocks.
#[derive(PartialEq)]
enum Kind {
    Readable,
    Silent,
    Unreadable,
}

impl World {
    fn served(&self) -> usize {
        self.nodes.iter().filter(|n| n.served().is_some()).count()
    }

    fn readable(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.disk_ok && matches!(n.copy, Copy::Published(_)))
            .count()
    }

    fn set_of(&self, n: usize) -> Option<&Set> {
        match &self.nodes[n].copy {
            Copy::Published(s) => Some(s),
            _ => None,
        }
    }

    fn kind(&self, p: usize) -> Kind {
        let n = &self.nodes[p];
        if !n.up {
            Kind::Silent
        } else if n.served().is_some() {
            Kind::Readable
        } else {
            Kind::Unreadable
        }
    }

    /// What `me` knows of `p`: the truth now, and for S whether a missing replica has been
    /// missing for longer than its grace.
    fn holding(&self, me: usize, p: usize) -> Holding {
        let missing = |grace: Duration| {
            if me == S && self.past_grace[p] {
                grace + Duration::from_secs(1)
            } else {
                Duration::ZERO
            }
        };
        match self.kind(p) {
            Kind::Silent => Holding::Silent(missing(GRACE.node)),
            Kind::Readable => Holding::Readable(self.nodes[p].served().unwrap().clone()),
            Kind::Unreadable => Holding::Unreadable(missing(GRACE.disk)),
        }
    }

    /// The others `remirror.rs` hands to `survey`: the partners in `mine` and every node with
    /// the image in its catalog (a published replica, readable or not).
    fn others(&self, me: usize, mine: &Set) -> Vec<Peer> {
        (0..N)
            .filter(|&p| p != me)
            .filter(|&p| mine.has(NAMES[p]) || matches!(self.nodes[p].copy, Copy::Published(_)))
            .map(|p| Peer {
                node: NAMES[p].to_string(),
                domain: DOMAINS[p].to_string(),
                holding: self.holding(me, p),
            })
            .collect()
    }

    /// Whether a newer set than `mine`, leaving `me` out, is served whole by nodes in two
    /// power domains, each holding exactly it: the only reason to trim (stated here apart
    /// from `survey`).
    fn superseded(&self, me: usize, mine: &Set) -> bool {
        self.nodes.iter().filter_map(Node::served).any(|set| {
            let mut domains: Vec<_> = set.nodes.iter().map(|n| domain_of(n)).collect();
            domains.sort();
            domains.dedup();
            set > mine
                && !set.has(NAMES[me])
                && domains.len() >= 2
                && !domains.contains(&None)
                && set.nodes.iter().all(|m| {
                    NAMES
                        .iter()
                        .position(|x| x == m)
                        .is_some_and(|i| self.nodes[i].served() == Some(set))
                })
        })
    }

    fn job_set(&self) -> Option<Set> {
        let job = self.job.as_ref()?;
        job.target.map(|t| new_set(job.epoch, S, t))
    }

    /// Two replicas served in two power domains, both of one set naming exactly them, no other
    /// published replica (but on a failed disk, or a node gone for good), and no job.
    fn settled(&self) -> bool {
        let held: Vec<usize> = (0..N)
            .filter(|&n| {
                let node = &self.nodes[n];
                node.disk_ok && !node.gone && matches!(node.copy, Copy::Published(_))
            })
            .collect();
        let [a, b] = held[..] else { return false };
        let (Some(sa), Some(sb)) = (self.nodes[a].served(), self.nodes[b].served()) else {
            return false;
        };
        sa == sb
            && sa.nodes == new_set(0, a, b).nodes
            && DOMAINS[a] != DOMAINS[b]
            && self.job.is_none()
    }
}

/// What the runtime around the rules does (`remirror.rs`, `placement.rs`); `AS_IS` is the
/// code as it is, `FIXED` closes the gaps the model found.
#[derive(Clone, Copy)]
struct Runtime {
    /// Gap 1 closed: a hidden copy counts for the job only if it carries the job's set; one of
    /// another set is verified against the job's manifest, and so thrown away. As it is,
    /// `GET /internal/replicas/ID/stage` names the stage of whatever hidden copy is there, and
    /// `placement::verify` and `publish` take a verified one as it is.
    stage_of_own_set: bool,
    /// Gap 2 closed: a job that gave up a target once (which may hold a copy by then) is not
    /// dropped when the partner is back (neither by `Step::Cancel` nor by a `Survey::Fine`),
    /// but goes on to a set newer than the one its abandoned target may hold.
    finish_abandoned: bool,
    /// Gap 4 open: a choice may get the epoch of the one before (`unix_now()` in the same
    /// second; `max(entry.epoch + 1)` does not prevent it).
    same_second: bool,
    /// Targets in another power domain than S's only (`false`: a wrong rule).
    other_domain: bool,
}

const FIXED: Runtime = Runtime {
    stage_of_own_set: true,
    finish_abandoned: true,
    same_second: false,
    other_domain: true,
};
const AS_IS: Runtime = Runtime {
    stage_of_own_set: false,
    finish_abandoned: false,
    same_second: true,
    other_domain: true,
};

type SurveyFn = fn(&str, &Set, &[Peer], &dyn Fn(&str) -> Option<String>, Grace) -> Survey;

struct Remirror {
    survey: SurveyFn,
    next_step: fn(&JobFacts) -> Step,
    runtime: Runtime,
    /// W has room (so gap 3 does not arise); otherwise its disk is out of service.
    room: bool,
    /// Crashes of S allowed.
    crashes: u8,
}

impl Remirror {
    fn new(runtime: Runtime, room: bool) -> Remirror {
        Remirror {
            survey,
            next_step,
            runtime,
            room,
            crashes: 2,
        }
    }

    /// With one crash of S only: enough to find the gaps, and quicker.
    fn quick(runtime: Runtime, room: bool) -> Remirror {
        Remirror {
            crashes: 1,
            ..Remirror::new(runtime, room)
        }
    }

    fn decide(&self, w: &World, me: usize) -> Option<Survey> {
        let mine = w.nodes[me].served()?;
        let others = w.others(me, mine);
        Some((self.survey)(NAMES[me], mine, &others, &domain_of, GRACE))
    }

    fn stage(&self, w: &World, t: usize) -> TargetStage {
        let n = &w.nodes[t];
        if !n.disk_ok {
            // `placement::find` does not look on a failed disk.
            return TargetStage::Nothing;
        }
        let own = |s: &Set| !self.runtime.stage_of_own_set || Some(s) == w.job_set().as_ref();
        match &n.copy {
            Copy::None => TargetStage::Nothing,
            Copy::Incoming => TargetStage::Incoming,
            Copy::Placed(_) => TargetStage::Placed,
            Copy::Verified(s) if own(s) => TargetStage::Verified,
            Copy::Verified(_) => TargetStage::Placed,
            Copy::Published(_) => TargetStage::Published,
        }
    }

    /// What `remirror::drive` hands to `next_step`.
    fn facts(&self, w: &World) -> Option<JobFacts> {
        let job = w.job.as_ref()?;
        let target_up = job.target.is_some_and(|t| w.nodes[t].up);
        Some(JobFacts {
            target: job.target.map(|t| NAMES[t].to_string()),
            target_up,
            target_stage: match job.target {
                Some(t) if target_up => self.stage(w, t),
                _ => TargetStage::Nothing,
            },
            adopted: w.job_set().is_some_and(|s| w.set_of(S) == Some(&s)),
            partner_back: NAMES
                .iter()
                .position(|n| *n == job.lost)
                .is_some_and(|p| w.nodes[p].served().is_some_and(|s| s.has(NAMES[S]))),
        })
    }

    /// The step S takes now, if it has a job and is up.
    fn step(&self, w: &World) -> Option<Step> {
        if !w.nodes[S].up {
            return None;
        }
        let facts = self.facts(w)?;
        let step = (self.next_step)(&facts);
        let abandoned = w.job.as_ref().is_some_and(|j| j.abandoned);
        Some(match step {
            Step::Cancel if self.runtime.finish_abandoned && abandoned => match facts.target {
                None => Step::Choose,
                Some(_) => Step::Place,
            },
            step => step,
        })
    }

    /// The nodes `remirror::choose` may pick: up, in another power domain than S, with room
    /// (a disk in service), holding no readable replica.
    fn candidates(&self, w: &World) -> Vec<usize> {
        (1..N)
            .filter(|&n| {
                let node = &w.nodes[n];
                node.up
                    && node.disk_ok
                    && node.served().is_none()
                    && (!self.runtime.other_domain || DOMAINS[n] != DOMAINS[S])
            })
            .collect()
    }

    /// Whether nothing more happens unless something fails again: no step to take, no grace
    /// period to run out, S up, and no node down but for good.
    fn quiet(&self, w: &World) -> bool {
        let mut next = Vec::new();
        self.actions(w, &mut next);
        next.into_iter()
            .filter(|a| {
                matches!(
                    a,
                    Action::Survey(_)
                        | Action::Do(_)
                        | Action::Choose(..)
                        | Action::GracePasses(_)
                        | Action::Restart
                        | Action::Up(_)
                )
            })
            .all(|a| self.next_state(w, a).is_none())
    }
}

/// Gives the job's target up; whether a copy may be left there.
fn give_up(w: &mut World) {
    let job = w.job.as_mut().unwrap();
    job.target = None;
    job.abandoned = true;
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    /// A node does what its survey says: S starts or drops a job, another trims.
    Survey(usize),
    /// S takes the step `next_step` names.
    Do(Step),
    /// `Step::Choose`, picking this node; `true`: in the same second as the choice before.
    Choose(usize, bool),
    /// S crashes in the middle of `Step::Place`: a half-sent copy left on the target.
    CrashSending,
    /// The placed copy does not read back right: the target throws it away (422).
    BadVerify,
    Crash,
    Restart,
    /// T or U goes down; for good or not.
    Down(usize, bool),
    Up(usize),
    /// T's or U's disk fails (for good) after it published.
    DiskFails(usize),
    /// L's disk answers again, is checked, and serves its old replica.
    LReturns,
    /// S has seen this partner without a readable replica for longer than its grace.
    GracePasses(usize),
}

impl Model for Remirror {
    type State = World;
    type Action = Action;

    fn init_states(&self) -> Vec<World> {
        let set = new_set(1, S, L);
        let node = |copy| Node {
            copy,
            disk_ok: true,
            up: true,
            gone: false,
        };
        let mut nodes = [
            node(Copy::Published(set.clone())),
            node(Copy::Published(set)),
            node(Copy::None),
            node(Copy::None),
            node(Copy::None),
            node(Copy::None),
        ];
        nodes[L].disk_ok = false;
        nodes[W].disk_ok = self.room;
        vec![World {
            nodes,
            job: None,
            past_grace: [false; N],
            clock: 1,
            adoptions: 0,
            crashes: self.crashes,
            downs: 1,
            losses: 1,
            bad_verifies: 1,
            l_returns: 1,
            broken: 0,
        }]
    }

    fn actions(&self, w: &World, actions: &mut Vec<Action>) {
        if w.broken != 0 {
            // Broken already: the path there is the counterexample.
            return;
        }
        for me in 0..N {
            let offered = match self.decide(w, me) {
                Some(Survey::Remirror { .. }) => me == S && w.job.is_none(),
                Some(Survey::Fine) => {
                    me == S
                        && w.job.as_ref().is_some_and(|j| {
                            j.target.is_none() && !(self.runtime.finish_abandoned && j.abandoned)
                        })
                }
                Some(Survey::Trim(_) | Survey::Delete) => true,
                Some(Survey::Wait { .. }) | None => false,
            };
            if offered {
                actions.push(Action::Survey(me));
            }
        }
        match self.step(w) {
            None => {}
            Some(Step::Choose) => {
                let floor = w.set_of(S).unwrap().epoch + 1;
                for c in self.candidates(w) {
                    actions.push(Action::Choose(c, false));
                    if self.runtime.same_second && w.clock >= floor {
                        actions.push(Action::Choose(c, true));
                    }
                }
            }
            Some(Step::Place) => {
                actions.push(Action::Do(Step::Place));
                if w.crashes > 0 {
                    actions.push(Action::CrashSending);
                }
            }
            Some(Step::Verify) => {
                actions.push(Action::Do(Step::Verify));
                if w.bad_verifies > 0 {
                    actions.push(Action::BadVerify);
                }
            }
            Some(step) => actions.push(Action::Do(step)),
        }
        if w.nodes[S].up {
            if w.crashes > 0 {
                actions.push(Action::Crash);
            }
            let mine = w.set_of(S).unwrap();
            for (p, name) in NAMES.iter().enumerate().skip(1) {
                if mine.has(name) && w.kind(p) != Kind::Readable && !w.past_grace[p] {
                    actions.push(Action::GracePasses(p));
                }
            }
        } else {
            actions.push(Action::Restart);
        }
        for n in FALLIBLE {
            let node = &w.nodes[n];
            if node.up {
                if w.downs > 0 {
                    actions.push(Action::Down(n, false));
                }
                if w.losses > 0 {
                    actions.push(Action::Down(n, true));
                }
            } else if !node.gone {
                actions.push(Action::Up(n));
            }
            if node.disk_ok && matches!(node.copy, Copy::Published(_)) && w.losses > 0 {
                actions.push(Action::DiskFails(n));
            }
        }
        if w.l_returns > 0 {
            actions.push(Action::LReturns);
        }
    }

    fn next_state(&self, before: &World, action: Action) -> Option<World> {
        let mut w = before.clone();
        let protocol = matches!(
            action,
            Action::Survey(_) | Action::Do(_) | Action::Choose(..) | Action::BadVerify
        );
        match action {
            Action::Survey(me) => match self.decide(&w, me)? {
                Survey::Remirror { lost } => {
                    w.job = Some(Job {
                        lost,
                        target: None,
                        epoch: 0,
                        abandoned: false,
                    })
                }
                Survey::Fine => w.job = None,
                Survey::Trim(_) | Survey::Delete => {
                    let mine = w.nodes[me].served().unwrap().clone();
                    if !w.superseded(me, &mine) {
                        w.broken |= TRIM_UNSAFE;
                    }
                    w.nodes[me].copy = Copy::None;
                    if me == S {
                        w.job = None;
                    }
                }
                Survey::Wait { .. } => return None,
            },
            Action::Choose(c, same) => {
                // `unix_now().max(entry.epoch + 1)`.
                let floor = w.set_of(S).unwrap().epoch + 1;
                let epoch = if same { w.clock } else { w.clock + 1 }.max(floor);
                w.clock = epoch;
                let job = w.job.as_mut().unwrap();
                job.target = Some(c);
                job.epoch = epoch;
            }
            Action::Do(step) => {
                let set = w.job_set();
                let t = w.job.as_ref().and_then(|j| j.target);
                match step {
                    Step::Choose => unreachable!("taken as Action::Choose"),
                    Step::Place => {
                        let t = t.unwrap();
                        if w.nodes[t].disk_ok {
                            w.nodes[t].copy = Copy::Placed(set.unwrap());
                        } else {
                            // No room there: every try fails, and another target is chosen.
                            give_up(&mut w);
                        }
                    }
                    Step::Verify => {
                        let t = t.unwrap();
                        match &w.nodes[t].copy {
                            Copy::Placed(s) | Copy::Verified(s) if Some(s) == set.as_ref() => {
                                w.nodes[t].copy = Copy::Verified(s.clone())
                            }
                            _ => {
                                // Its manifest differs from the sender's: thrown away, 422.
                                w.nodes[t].copy = Copy::None;
                                give_up(&mut w);
                            }
                        }
                    }
                    Step::Publish => {
                        let t = t.unwrap();
                        let Copy::Verified(s) = &w.nodes[t].copy else {
                            panic!("publish without a verified copy: {:?}", w.nodes[t]);
                        };
                        w.nodes[t].copy = Copy::Published(s.clone());
                    }
                    Step::Adopt => {
                        let set = set.unwrap();
                        match w.nodes[t.unwrap()].served() {
                            None => w.broken |= ADOPTED_UNPUBLISHED,
                            Some(s) if *s != set => w.broken |= ADOPTED_OTHER_SET,
                            Some(_) => {}
                        }
                        w.nodes[S].copy = Copy::Published(set);
                        w.adoptions += 1;
                    }
                    Step::Rechoose => give_up(&mut w),
                    Step::Cancel | Step::Done => w.job = None,
                }
            }
            Action::CrashSending => {
                let t = w.job.as_ref().unwrap().target.unwrap();
                if w.nodes[t].disk_ok {
                    w.nodes[t].copy = Copy::Incoming;
                }
                w.nodes[S].up = false;
                w.past_grace = [false; N];
                w.crashes -= 1;
            }
            Action::BadVerify => {
                let t = w.job.as_ref().unwrap().target.unwrap();
                w.nodes[t].copy = Copy::None;
                give_up(&mut w);
                w.bad_verifies -= 1;
            }
            Action::Crash => {
                w.nodes[S].up = false;
                w.past_grace = [false; N];
                w.crashes -= 1;
            }
            Action::Restart => w.nodes[S].up = true,
            Action::Down(n, gone) => {
                w.nodes[n].up = false;
                w.nodes[n].gone = gone;
                if gone {
                    w.losses -= 1;
                } else {
                    w.downs -= 1;
                }
            }
            Action::Up(n) => {
                w.nodes[n].up = true;
                if w.nodes[n].copy == Copy::Incoming {
                    w.nodes[n].copy = Copy::None;
                }
            }
            Action::DiskFails(n) => {
                w.nodes[n].disk_ok = false;
                w.losses -= 1;
            }
            Action::LReturns => {
                w.nodes[L].disk_ok = true;
                w.l_returns -= 1;
            }
            Action::GracePasses(p) => w.past_grace[p] = true,
        }
        // S's clock of a partner's absence starts again when what it sees of it changes.
        for p in 1..N {
            if before.kind(p) != w.kind(p) {
                w.past_grace[p] = false;
            }
        }
        if protocol && before.served() >= 2 && w.served() < 2 {
            w.broken |= DROPPED;
        }
        Some(w)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(
                "a replica is always readable, and one served while S is up",
                |_, w: &World| w.readable() >= 1 && (!w.nodes[S].up || w.served() >= 1),
            ),
            Property::always(
                "no step lowers the served replicas below two",
                |_, w: &World| w.broken & DROPPED == 0,
            ),
            Property::always(
                "a trim only when a newer set is served whole in two power domains",
                |_, w: &World| w.broken & TRIM_UNSAFE == 0,
            ),
            Property::always(
                "a set is adopted only once the new partner published a replica",
                |_, w: &World| w.broken & ADOPTED_UNPUBLISHED == 0,
            ),
            Property::always("every set spans two power domains", |_, w: &World| {
                (0..N).filter_map(|n| w.set_of(n)).all(|s| {
                    let mut d: Vec<_> = s.nodes.iter().map(|n| domain_of(n)).collect();
                    d.sort();
                    d.dedup();
                    d.len() >= 2
                })
            }),
            Property::always(
                "only the survivor ever has to copy",
                |m: &Remirror, w: &World| {
                    (1..N).all(|n| !matches!(m.decide(w, n), Some(Survey::Remirror { .. })))
                },
            ),
            Property::always(
                "a set is adopted only if the new partner holds exactly it",
                |_, w: &World| w.broken & ADOPTED_OTHER_SET == 0,
            ),
            Property::always(
                "once nothing more happens: two replicas in two domains, one set, no job",
                |m: &Remirror, w: &World| w.broken != 0 || w.settled() || !m.quiet(w),
            ),
            Property::eventually(
                "two replicas in two domains, one set, no job",
                |_, w: &World| w.settled(),
            ),
            Property::sometimes("a returning L is trimmed", |_, w: &World| {
                w.l_returns == 0 && w.nodes[L].copy == Copy::None
            }),
            Property::sometimes(
                "another target chosen after a failed verification",
                |_, w: &World| w.bad_verifies == 0 && w.adoptions > 0,
            ),
            Property::sometimes(
                "a job cancelled: L is back before anything was sent",
                |m: &Remirror, w: &World| m.step(w) == Some(Step::Cancel),
            ),
            Property::sometimes(
                "a half-sent copy taken up again with the same target after a crash",
                |_, w: &World| {
                    w.nodes[S].up
                        && w.job
                            .as_ref()
                            .and_then(|j| j.target)
                            .is_some_and(|t| w.nodes[t].up && w.nodes[t].copy == Copy::Incoming)
                },
            ),
            Property::sometimes(
                "the new partner lost too, and copied again",
                |_, w: &World| w.adoptions == 2 && w.settled(),
            ),
            Property::sometimes(
                "a replica of an abandoned set beside the adopted one",
                |_, w: &World| {
                    w.adoptions > 0
                        && (1..N).any(|n| {
                            w.nodes[n].disk_ok
                                && w.set_of(n).is_some_and(|s| {
                                    s.has(NAMES[S]) && s.has(NAMES[n]) && Some(s) != w.set_of(S)
                                })
                                && !w.set_of(S).unwrap().has(NAMES[n])
                        })
                },
            ),
            Property::sometimes(
                "a hidden copy outlives its job (it stays on the target's disk)",
                |_, w: &World| {
                    w.settled()
                        && w.nodes
                            .iter()
                            .any(|n| matches!(n.copy, Copy::Placed(_) | Copy::Verified(_)))
                },
            ),
        ]
    }
}

/// The properties that hold on the runtime as it is.
const SAFETY: [&str; 6] = [
    "a replica is always readable, and one served while S is up",
    "no step lowers the served replicas below two",
    "a trim only when a newer set is served whole in two power domains",
    "a set is adopted only once the new partner published a replica",
    "every set spans two power domains",
    "only the survivor ever has to copy",
];
const QUIESCENCE: &str = "once nothing more happens: two replicas in two domains, one set, no job";

fn check(model: Remirror, what: &str) -> impl Checker<Remirror> {
    let start = std::time::Instant::now();
    let checker = model.checker().spawn_bfs().join();
    eprintln!(
        "remirror model ({what}): {} states checked, {} unique, in {:.1?}",
        checker.state_count(),
        checker.unique_state_count(),
        start.elapsed()
    );
    checker
}

/// The path to a discovery, for the test's output.
fn show(checker: &impl Checker<Remirror>, property: &'static str) -> bool {
    match checker.discovery(property) {
        Some(path) => {
            eprintln!("  {property}: {:?}", path.into_actions());
            true
        }
        None => false,
    }
}

#[test]
fn the_remirror_rules_never_drop_a_replica_they_need() {
    let checker = check(Remirror::new(AS_IS, false), "as it is");
    for property in SAFETY {
        checker.assert_no_discovery(property);
    }
    for p in checker.model().properties() {
        if p.expectation == stateright::Expectation::Sometimes {
            assert!(
                checker.discovery(p.name).is_some(),
                "never reached: {}",
                p.name
            );
        }
    }
    assert!(
        checker.unique_state_count() > 10_000,
        "the model explores something"
    );
}

#[test]
fn with_its_gaps_closed_every_run_ends_with_two_replicas_of_one_set() {
    let checker = check(Remirror::new(FIXED, true), "gaps closed, room");
    checker.assert_properties();
    assert!(
        checker.unique_state_count() > 10_000,
        "the model explores something"
    );
}

/// Gap 1, in 11 steps: L's grace runs out, S starts a job and chooses T (epoch 2); T's copy is
/// placed and verified; T goes down and S gives it up (`Rechoose`); T is back and chosen again
/// (epoch 3); its stage is "verified", so S has it published (under {S,T} at 2, the manifest it
/// was sealed with) and adopts {S,T} at 3. The sets disagree: a returning L is never trimmed,
/// as neither set is held whole.
#[test]
fn gap_1_a_hidden_copy_of_an_abandoned_choice_is_published_under_its_old_set() {
    let checker = check(
        Remirror::quick(
            Runtime {
                stage_of_own_set: false,
                ..FIXED
            },
            true,
        ),
        "gap 1 open",
    );
    for property in SAFETY {
        checker.assert_no_discovery(property);
    }
    assert!(show(
        &checker,
        "a set is adopted only if the new partner holds exactly it"
    ));
}

/// Gap 2, in 11 steps: L's grace runs out, S chooses T (epoch 2), T publishes; T goes down
/// before S adopts, S gives it up (`Rechoose`); T is back; L's disk is back, so S's survey says
/// `Fine` and the job, without a target, is dropped (or `Step::Cancel` drops it). T keeps
/// {S,T} at 2, newer than {S,L} at 1 and never whole: three replicas for good.
#[test]
fn gap_2_a_job_dropped_after_a_rechoose_leaves_its_published_copy_for_good() {
    let checker = check(
        Remirror::quick(
            Runtime {
                finish_abandoned: false,
                ..FIXED
            },
            true,
        ),
        "gap 2 open",
    );
    for property in SAFETY {
        checker.assert_no_discovery(property);
    }
    assert!(show(&checker, QUIESCENCE));
}

/// Gap 3, in 10 steps (the same on the runtime as it is): as gap 2 until T is back with
/// {S,T} at 2, then U goes down for good, and L's disk stays failed. The job has no target, and
/// `choose` skips T (it holds a readable replica); no other node has room. S's job waits for
/// ever, its set still naming L, beside T's published copy of a newer set naming S. (Another
/// path: a returning replica of an older set, on the only node with room, after S's new partner
/// failed.)
#[test]
fn gap_3_a_node_holding_a_readable_replica_is_never_chosen() {
    let checker = check(Remirror::quick(FIXED, false), "gap 3 open");
    for property in SAFETY {
        checker.assert_no_discovery(property);
    }
    assert!(show(&checker, QUIESCENCE));
}

/// Gap 4, in 15 steps: L's grace runs out, S chooses U (epoch 2), U publishes and goes down
/// before S adopts; S gives it up and chooses T in the same second (epoch 2 again), T
/// publishes, S adopts {S,T} at 2. U comes back with {S,U} at 2, which sorts after {S,T} at 2:
/// "newer", so never superseded, and three replicas for good. (T left and U adopted would be
/// trimmed.)
#[test]
fn gap_4_two_choices_in_one_second_make_sets_of_one_epoch() {
    let checker = check(
        Remirror::quick(
            Runtime {
                same_second: true,
                ..FIXED
            },
            true,
        ),
        "gap 4 open",
    );
    for property in SAFETY {
        checker.assert_no_discovery(property);
    }
    assert!(show(&checker, QUIESCENCE));
}

/// Trims as soon as a newer set leaves it out, whole or not. Caught in 8 steps: T publishes
/// {S,T} at 2, S has not adopted it yet, and a returning L trims itself.
fn hasty_trim(
    me: &str,
    mine: &Set,
    others: &[Peer],
    domain_of: &dyn Fn(&str) -> Option<String>,
    grace: Grace,
) -> Survey {
    let newer = others.iter().find_map(|p| match &p.holding {
        Holding::Readable(s) if s > mine && !s.has(me) => Some(s.clone()),
        _ => None,
    });
    match newer {
        Some(s) => Survey::Trim(s),
        None => survey(me, mine, others, domain_of, grace),
    }
}

/// Adopts once the target verified, before it published. Caught in 6 steps.
fn hasty_adopt(f: &JobFacts) -> Step {
    match next_step(f) {
        Step::Publish => Step::Adopt,
        step => step,
    }
}

#[test]
fn the_properties_catch_a_wrong_protocol() {
    let model = Remirror {
        survey: hasty_trim,
        ..Remirror::quick(FIXED, true)
    };
    let checker = check(model, "hasty trim");
    assert!(show(
        &checker,
        "a trim only when a newer set is served whole in two power domains"
    ));
    let model = Remirror {
        next_step: hasty_adopt,
        ..Remirror::quick(FIXED, true)
    };
    let checker = check(model, "hasty adopt");
    assert!(show(
        &checker,
        "a set is adopted only once the new partner published a replica"
    ));
    let any_domain = Runtime {
        other_domain: false,
        ..FIXED
    };
    let checker = check(Remirror::quick(any_domain, true), "any domain");
    assert!(show(&checker, "every set spans two power domains"));
}
