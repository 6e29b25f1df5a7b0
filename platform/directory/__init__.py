"""Single sign-on: LDAP and OIDC sign-in, directory groups mapped to teams and roles."""
