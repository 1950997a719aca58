package pty

import (
	"bytes"
	"io"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRawPair(t *testing.T) {
	master, path, err := Open()
	require.NoError(t, err)
	defer master.Close()
	assert.Regexp(t, `^/dev/pts/\d+$`, path)
	slave, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOCTTY, 0)
	require.NoError(t, err)
	defer slave.Close()

	// Every byte value passes unchanged both ways: no echo, no CR/LF mapping, no XON/XOFF, no ^C.
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	_, err = master.Write(all)
	require.NoError(t, err)
	got := make([]byte, 256)
	_, err = io.ReadFull(slave, got)
	require.NoError(t, err)
	assert.Equal(t, all, got)

	_, err = slave.Write(all)
	require.NoError(t, err)
	_, err = io.ReadFull(master, got)
	require.NoError(t, err)
	assert.Equal(t, all, got, "nothing echoed, nothing mapped")
}

func TestCloseInterruptsRead(t *testing.T) {
	master, path, err := Open()
	require.NoError(t, err)
	slave, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOCTTY, 0)
	require.NoError(t, err)
	defer slave.Close()
	done := make(chan error, 1)
	go func() {
		_, err := master.Read(make([]byte, 16))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	require.NoError(t, master.Close())
	select {
	case err := <-done:
		assert.Error(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not interrupt Read on the master")
	}
	// The host side notices the vanished master.
	n, err := slave.Read(make([]byte, 16))
	assert.True(t, err != nil || n == 0, "slave read after master close: n=%d err=%v", n, err)
}

func TestHangupSeenByMaster(t *testing.T) {
	master, path, err := Open()
	require.NoError(t, err)
	defer master.Close()
	slave, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOCTTY, 0)
	require.NoError(t, err)
	_, err = slave.Write([]byte("x"))
	require.NoError(t, err)
	buf := make([]byte, 4)
	_, err = master.Read(buf)
	require.NoError(t, err)
	require.NoError(t, slave.Close())
	_, err = master.Read(buf)
	assert.Error(t, err, "EIO after the last slave descriptor closed")
	// Re-opening the slave path brings the pair back.
	slave, err = os.OpenFile(path, os.O_RDWR|syscall.O_NOCTTY, 0)
	require.NoError(t, err)
	defer slave.Close()
	_, err = slave.Write([]byte("y"))
	require.NoError(t, err)
	n, err := master.Read(buf)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(buf[:n], []byte("y")))
}
