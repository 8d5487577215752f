//! Deterministic tenant generator (same seed and size → byte-identical directory) and the
//! small cache of JPEG profile photos shared by all users.
//!
//! Uses its own SplitMix64 so output does not change with `rand` releases.

use std::sync::OnceLock;

use uuid::Uuid;

use super::model::{Directory, Group, Life, User, group_ref, user_ref};

/// Tenant size presets for the generator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantSize {
    /// 50 users, 10 groups, ~150 membership edges.
    Tiny,
    /// 1,000 users, 100 groups, ~5,000 membership edges.
    S,
    /// 50,000 users, 5,000 groups, ~500,000 membership edges.
    M,
    /// 300,000 users, 30,000 groups, ~3,000,000 membership edges.
    L,
}

impl TenantSize {
    /// (users, groups, memberships) of the preset.
    pub fn counts(self) -> (u32, u32, u32) {
        match self {
            TenantSize::Tiny => (50, 10, 150),
            TenantSize::S => (1_000, 100, 5_000),
            TenantSize::M => (50_000, 5_000, 500_000),
            TenantSize::L => (300_000, 30_000, 3_000_000),
        }
    }
}

impl std::str::FromStr for TenantSize {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "tiny" => TenantSize::Tiny,
            "s" => TenantSize::S,
            "m" => TenantSize::M,
            "l" => TenantSize::L,
            other => anyhow::bail!("unknown size '{other}' (tiny|s|m|l)"),
        })
    }
}

/// SplitMix64: tiny, fast, stable.
pub struct Rng(u64);
impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn uuid(&mut self) -> Uuid {
        let v = ((self.next_u64() as u128) << 64) | self.next_u64() as u128;
        uuid::Builder::from_random_bytes(v.to_be_bytes()).into_uuid()
    }
}

const FIRST: &[&str] = &[
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Margaret",
    "Dennis",
    "Barbara",
    "Ken",
    "Frances",
    "Edsger",
    "Radia",
    "Donald",
    "Katherine",
    "John",
    "Hedy",
    "Tim",
    "Sophie",
    "Niklaus",
    "Joan",
    "Bjarne",
    "Anita",
    "Guido",
    "Karen",
    "James",
    "Shafi",
    "Leslie",
    "Mary",
    "Robin",
    "Adele",
    "Ivan",
    "Lynn",
    "Whitfield",
    "Carol",
    "Vint",
    "Elena",
    "Yukihiro",
    "Priya",
    "Mateo",
    "Aisha",
    "Lars",
    "Chen",
    "Fatima",
    "Oluwaseun",
    "Ingrid",
    "Diego",
    "Mei",
    "Kwame",
    "Zofia",
    "Rahul",
    "Noor",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Ritchie",
    "Liskov",
    "Thompson",
    "Allen",
    "Dijkstra",
    "Perlman",
    "Knuth",
    "Johnson",
    "McCarthy",
    "Lamarr",
    "Berners-Lee",
    "Wilson",
    "Wirth",
    "Clarke",
    "Stroustrup",
    "Borg",
    "van Rossum",
    "Jones",
    "Gosling",
    "Goldwasser",
    "Lamport",
    "Kenneth",
    "Milner",
    "Goldberg",
    "Sutherland",
    "Conway",
    "Diffie",
    "Shaw",
    "Cerf",
    "Petrova",
    "Matsumoto",
    "Sharma",
    "Garcia",
    "Okafor",
    "Nilsson",
    "Wei",
    "Haddad",
    "Adeyemi",
    "Larsen",
    "Fernandez",
    "Tanaka",
    "Mensah",
    "Nowak",
    "Gupta",
    "Rahman",
];
const DEPTS: &[&str] = &[
    "Engineering",
    "Sales",
    "Marketing",
    "Finance",
    "Legal",
    "Support",
    "Operations",
    "Research",
    "HR",
    "Design",
    "Security",
    "Data",
];
const KINDS: &[&str] = &[
    "Team", "Project", "Admins", "Readers", "Guild", "Leads", "All",
];

/// Generates a directory. `created` is the fixed creation timestamp used for all objects so
/// output does not depend on the wall clock.
pub fn generate(users: u32, groups: u32, memberships: u32, seed: u64, domain: &str) -> Directory {
    const CREATED: i64 = 1_704_067_200; // 2024-01-01T00:00:00Z
    let mut rng = Rng::new(seed);
    let mut dir = Directory::new(domain);
    dir.users.reserve(users as usize);
    dir.user_by_id.reserve(users as usize);
    dir.user_by_upn.reserve(users as usize);
    for i in 0..users {
        let given = FIRST[rng.below(FIRST.len() as u64) as usize];
        let sur = LAST[rng.below(LAST.len() as u64) as usize];
        let local = format!(
            "{}.{}{}",
            given.to_ascii_lowercase(),
            sur.to_ascii_lowercase().replace(' ', ""),
            i
        );
        let r = rng.unit();
        // ~5% guests, ~3% disabled, ~60% with a photo.
        let guest = r < 0.05;
        let enabled = !(0.05..0.08).contains(&r);
        let (upn, mail) = if guest {
            // Guest UPN form per https://learn.microsoft.com/graph/api/user-list
            (
                format!("{local}_example.com#EXT#@{domain}"),
                format!("{local}@example.com"),
            )
        } else {
            (format!("{local}@{domain}"), format!("{local}@{domain}"))
        };
        let photo = (rng.unit() < 0.6).then(|| rng.below(8) as u16);
        let user = User {
            id: rng.uuid(),
            upn: upn.into(),
            mail: Some(mail.into()),
            given_name: Some(given.into()),
            surname: Some(sur.into()),
            display_name: format!("{given} {sur}").into(),
            account_enabled: enabled,
            sam: (!guest).then(|| {
                let mut s = format!("{}{}", &given[..1], sur.replace(' ', "")).to_ascii_lowercase();
                s.truncate(12);
                format!("{s}{i}").into()
            }),
            employee_id: (!guest && rng.unit() < 0.9).then(|| format!("E{i:07}").into()),
            guest,
            job_title: Some(KINDS[rng.below(KINDS.len() as u64) as usize].into()),
            department: Some(DEPTS[rng.below(DEPTS.len() as u64) as usize].into()),
            photo,
            photo_version: 1,
            created: CREATED,
            seq: 0,
            life: Life::Active,
        };
        // Ids/UPNs are unique by construction; a clash would be a generator bug.
        let _ = dir.push_user(user);
    }
    for g in 0..groups {
        let dept = DEPTS[rng.below(DEPTS.len() as u64) as usize];
        let kind = KINDS[rng.below(KINDS.len() as u64) as usize];
        let unified = rng.unit() < 0.3;
        let name = format!("{dept} {kind} {g}");
        let group = Group {
            id: rng.uuid(),
            description: Some(format!("{kind} group of {dept}").into()),
            mail_nickname: format!(
                "{}{}{}",
                dept.to_ascii_lowercase(),
                kind.to_ascii_lowercase(),
                g
            )
            .into(),
            display_name: name.into(),
            mail_enabled: unified,
            security_enabled: !unified,
            unified,
            created: CREATED,
            members: Vec::new(),
            seq: 0,
            member_log: Vec::new(),
            life: Life::Active,
        };
        let _ = dir.push_group(group);
    }
    if groups > 0 && users > 0 {
        // Skewed group sizes: group index ~ G * u^2 gives a few big groups and a long tail.
        for _ in 0..memberships {
            let u = rng.unit();
            let g = ((u * u) * groups as f64) as usize;
            let m = rng.below(users as u64) as u32;
            dir.groups[g.min(groups as usize - 1)]
                .members
                .push(user_ref(m));
        }
        // Nesting: a chain of up to 8 levels (deep nesting), plus ~5% of groups with a child
        // group of higher index (a DAG, so no cycles).
        let depth = groups.min(8);
        for g in 1..depth {
            dir.groups[(g - 1) as usize].members.push(group_ref(g));
        }
        for g in depth..groups {
            if rng.unit() < 0.05 && g + 1 < groups {
                let child = g + 1 + rng.below((groups - g - 1) as u64) as u32;
                dir.groups[g as usize].members.push(group_ref(child));
            }
        }
        for g in &mut dir.groups {
            g.members.sort_unstable();
            g.members.dedup();
            g.members.shrink_to_fit();
        }
    }
    dir
}

/// Number of distinct cached photos.
pub const PHOTO_COUNT: usize = 8;
/// Edge length of generated photos (the `id` of the photo metadata is `"96x96"`).
pub const PHOTO_SIZE: u32 = 96;

/// The cached JPEGs at [`PHOTO_SIZE`] (generated once, on first use).
pub fn photos() -> &'static [Vec<u8>] {
    static PHOTOS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    PHOTOS.get_or_init(|| {
        (0..PHOTO_COUNT)
            .map(|i| render_photo(i, PHOTO_SIZE))
            .collect()
    })
}

/// Photo `i` at `size`×`size` pixels (sizes other than [`PHOTO_SIZE`] are rendered on demand
/// and cached).
pub fn photo_at(i: usize, size: u32) -> Vec<u8> {
    if size == PHOTO_SIZE {
        return photos()[i % PHOTO_COUNT].clone();
    }
    type Cache = std::sync::Mutex<std::collections::HashMap<(usize, u32), Vec<u8>>>;
    static OTHER: OnceLock<Cache> = OnceLock::new();
    let cache = OTHER.get_or_init(Default::default);
    let key = (i % PHOTO_COUNT, size);
    let mut c = cache.lock().unwrap_or_else(|p| p.into_inner());
    c.entry(key)
        .or_insert_with(|| render_photo(key.0, size))
        .clone()
}

fn render_photo(i: usize, size: u32) -> Vec<u8> {
    let base = [
        (i * 37 % 256) as u8,
        (i * 91 % 256) as u8,
        (i * 53 % 256) as u8,
    ];
    // The same picture at every size (coordinates scaled to the 96-pixel original).
    let scale = |v: u32| (v * PHOTO_SIZE / size.max(1)) as u8;
    let img = image::RgbImage::from_fn(size, size, |x, y| {
        image::Rgb([
            base[0].wrapping_add(scale(x)),
            base[1].wrapping_add(scale(y)),
            base[2].wrapping_add(scale(x) ^ scale(y)),
        ])
    });
    let mut out = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80);
    // Encoding an in-memory RGB buffer cannot fail.
    let _ = img.write_with_encoder(enc);
    out
}
