// How a file is written as the lab's owner, in their home or their directory, where another user
// may be able to put things too (a shared project directory): by a small program of ours, run as
// them (setpriv), never by a shell. It writes a new file at a fresh, random name beside the target
// (O_CREAT|O_EXCL|O_NOFOLLOW: never a file or a link found there), sets its mode through the
// descriptor, syncs it and renames it over the target. The shell it replaces wrote to
// "$1.aplspawn-$$", a name anyone could guess and plant a link at, through `cat >`, which followed it.
//
// The program is Perl's (perl-base is Essential on Debian and Ubuntu; src/host/exec.ts's log relay
// is Perl's too), with only modules of perl-base: it starts in a few ms where a second Node took
// 40 ms or more of CPU, twice in the second a small lab's up spends after its last container
// answers (the owner's copies, then Ansible's inventory).

// Run with `perl -e`. stdin: records, each field ended by a NUL: "D", path (a directory made as
// mkdir -p -m 0700 makes it); or "F", mode in octal, path, length in bytes, then that many bytes
// (the file's content). Directories come first.
const PROGRAM = `use strict;
use warnings;
use Fcntl qw(O_WRONLY O_CREAT O_EXCL O_NOFOLLOW);
use IO::Handle;
binmode STDIN;
my $in = do { local $/; <STDIN> };
$in = "" unless defined $in;
my $pos = 0;
sub field {
  my $end = index($in, "\\0", $pos);
  die "truncated input\\n" if $end < 0;
  my $f = substr($in, $pos, $end - $pos);
  $pos = $end + 1;
  return $f;
}
sub random_hex {
  open(my $r, "<:raw", "/dev/urandom") or die "/dev/urandom: $!\\n";
  (read($r, my $b, 8) // 0) == 8 or die "/dev/urandom: short read\\n";
  close($r);
  return unpack("H*", $b);
}
sub mkdir_p {
  my ($d) = @_;
  my $p = substr($d, 0, 1) eq "/" ? "" : ".";
  for my $c (grep { length } split m{/}, $d) {
    $p .= "/$c";
    next if -d $p;
    mkdir($p, 0700) or -d $p or die "mkdir $p: $!\\n";
  }
}
sub write_one {
  my ($file, $mode, $data) = @_;
  my ($dir, $base) = $file =~ m{^(.*/)?([^/]+)$} or die "not a file name: $file\\n";
  $dir = "./" unless defined $dir;
  my ($fh, $tmp);
  for (my $tries = 1; ; $tries++) {
    $tmp = "$dir.$base.aplspawn-" . random_hex() . ".tmp";
    last if sysopen($fh, $tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
    die "$tmp: $!\\n" unless $!{EEXIST} && $tries < 5;
  }
  my $ok = eval {
    chmod($mode, $fh) or die "chmod $tmp: $!\\n";
    for (my $off = 0; $off < length($data); ) {
      my $w = syswrite($fh, $data, length($data) - $off, $off);
      die "write $tmp: $!\\n" unless defined $w;
      $off += $w;
    }
    $fh->sync or die "fsync $tmp: $!\\n";
    close($fh) or die "close $tmp: $!\\n";
    rename($tmp, $file) or die "rename $tmp: $!\\n";
    1;
  };
  if (!$ok) {
    my $e = $@;
    unlink($tmp);
    die $e;
  }
}
while ($pos < length($in)) {
  my $kind = field();
  if ($kind eq "D") { mkdir_p(field()); next; }
  die "unknown record $kind\\n" unless $kind eq "F";
  my $mode = oct(field());
  my $path = field();
  my $len = field();
  die "bad length $len\\n" unless $len =~ /^[0-9]+$/ && $pos + $len <= length($in);
  my $data = substr($in, $pos, $len);
  $pos += $len;
  write_one($path, $mode, $data);
}
`;

/** Files and the directories to make first, written by one process. */
export interface OwnerWrites {
  dirs: string[];
  files: { path: string; mode: number; text: string }[];
}

/** The command that writes `writes` in one process, run as the owner, and the stdin to give it. */
export function ownerWriteCommand(w: OwnerWrites): { cmd: string; args: string[]; input: string } {
  const records = [
    ...w.dirs.map((d) => `D\0${d}\0`),
    ...w.files.map(
      (f) => `F\0${f.mode.toString(8)}\0${f.path}\0${Buffer.byteLength(f.text, "utf8")}\0${f.text}`,
    ),
  ];
  for (const p of [...w.dirs, ...w.files.map((f) => f.path)])
    if (p.includes("\0")) throw new Error(`a path with a NUL byte: ${JSON.stringify(p)}`);
  return { cmd: "perl", args: ["-e", PROGRAM], input: records.join("") };
}
