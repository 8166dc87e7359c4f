package master

// ExportWALRecord frames a payload as a record of the file registry's log,
// for tests that write logs by hand.
var ExportWALRecord = walRecord
