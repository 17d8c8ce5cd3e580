// Package env is the contract of a local environment's state directory:
// env.json, the Manifest paydr up writes and paydr down, paydr status, DR
// operations and scripts read, and the Layout of the files around it (data
// directories, logs, pid files, the Terraform working directory, the DR
// journal and lock).
//
// Regions are kept by slot ("primary", "secondary"): the processor of a slot
// always talks to the database of that slot, while which slot holds the
// writer is data (Database.Role) that DR operations change with SetWriter.
//
// It depends on the standard library only, so the DR backend of the local
// environment reads the manifest without linking paydr up's synthesis and
// Terraform.
package env
