"""A private OpenLDAP server (Debian's slapd) for the directory sign-in tests.

slapd.conf and an mdb database in a temporary folder, listening on 127.0.0.1 on a free port,
run in the foreground (-d 0) so the test owns the process; stop() and start() model an outage.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import ldap
import ldap.modlist

SUFFIX = "dc=hospital,dc=example"
ROOT_DN, ROOT_PASSWORD = f"cn=admin,{SUFFIX}", "slapd-test-root"
PEOPLE, GROUPS = f"ou=people,{SUFFIX}", f"ou=groups,{SUFFIX}"
SERVICE_DN, SERVICE_PASSWORD = f"cn=carttrack,{SUFFIX}", "service-account-pw"
SLAPD = Path("/usr/sbin/slapd")

CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
pidfile {folder}/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 10485760
suffix "{suffix}"
rootdn "{root_dn}"
rootpw {root_password}
directory {folder}/db
access to attrs=userPassword by self read by anonymous auth by * none
access to * by * read
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Slapd:
    def __init__(self, folder: Path):
        self.folder = folder
        (folder / "db").mkdir(parents=True)
        self.conf = folder / "slapd.conf"
        self.conf.write_text(
            CONF.format(folder=folder, suffix=SUFFIX, root_dn=ROOT_DN, root_password=ROOT_PASSWORD)
        )
        self.port = _free_port()
        self.uri = f"ldap://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(SLAPD), "-f", str(self.conf), "-h", f"{self.uri}/", "-d", "0"],
            stdout=subprocess.DEVNULL,
            stderr=open(self.folder / "slapd.log", "a"),
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                self.connect().unbind_s()
                return
            except ldap.SERVER_DOWN:
                assert self.process.poll() is None, (self.folder / "slapd.log").read_text()
                time.sleep(0.1)
        raise AssertionError("slapd did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def connect(self):
        connection = ldap.initialize(self.uri)
        connection.set_option(ldap.OPT_NETWORK_TIMEOUT, 2)
        connection.simple_bind_s(ROOT_DN, ROOT_PASSWORD)
        return connection

    def add(self, dn: str, **attributes) -> None:
        entry = {
            k: [v.encode() for v in (vs if isinstance(vs, list) else [vs])]
            for k, vs in attributes.items()
        }
        connection = self.connect()
        connection.add_s(dn, ldap.modlist.addModlist(entry))
        connection.unbind_s()

    def modify(self, dn: str, attribute: str, values: list[str]) -> None:
        connection = self.connect()
        connection.modify_s(dn, [(ldap.MOD_REPLACE, attribute, [v.encode() for v in values])])
        connection.unbind_s()

    def delete(self, dn: str) -> None:
        connection = self.connect()
        connection.delete_s(dn)
        connection.unbind_s()

    def person(self, uid: str, password: str, *, given: str, surname: str) -> str:
        dn = f"uid={uid},{PEOPLE}"
        self.add(
            dn,
            objectClass=["inetOrgPerson"],
            uid=uid,
            cn=f"{given} {surname}",
            givenName=given,
            sn=surname,
            mail=f"{uid}@hospital.example",
            userPassword=password,
        )
        return dn

    def group(self, cn: str, members: list[str]) -> str:
        dn = f"cn={cn},{GROUPS}"
        self.add(dn, objectClass=["groupOfNames"], cn=cn, member=members)
        return dn

    def base(self) -> None:
        self.add(SUFFIX, objectClass=["dcObject", "organization"], dc="hospital", o="Hospital")
        self.add(PEOPLE, objectClass=["organizationalUnit"], ou="people")
        self.add(GROUPS, objectClass=["organizationalUnit"], ou="groups")
        self.add(
            SERVICE_DN,
            objectClass=["organizationalRole", "simpleSecurityObject"],
            cn="carttrack",
            userPassword=SERVICE_PASSWORD,
        )

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
