"""The private PostgreSQL clusters' authentication (the tests' and the
benchmark's), the README's model: peer authentication on the unix socket
through an ident map, no trust. This process's user (and postgres) connect
as postgres; httpd's children (www-data when run as root, else this user)
as httpd's role."""

import os
import pwd


def write_peer_auth(data, map_name, httpd_role, hba_extra=""):
    """Writes pg_ident.conf and pg_hba.conf into the data directory."""
    me = pwd.getpwuid(os.getuid()).pw_name
    child = "www-data" if os.geteuid() == 0 else me
    ident = {(me, "postgres"), ("postgres", "postgres"), (child, httpd_role)}
    with open(os.path.join(data, "pg_ident.conf"), "w") as f:
        f.writelines(f"{map_name} {os_user} {role}\n"
                     for os_user, role in sorted(ident))
    with open(os.path.join(data, "pg_hba.conf"), "w") as f:
        f.write(f"local all all peer map={map_name}\n" + hba_extra)
