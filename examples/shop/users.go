package shop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	usersv1 "github.com/edgegate/edgegate/gen/shop/users/v1"
)

// Users is the in-memory UsersService. Its methods are safe for concurrent
// use.
type Users struct {
	usersv1.UnimplementedUsersServiceServer

	mu    sync.Mutex
	users map[string]*usersv1.User
}

// NewUsers returns the service with two users, "ada" and "alan".
func NewUsers() *Users {
	return &Users{users: map[string]*usersv1.User{
		"ada":  {UserId: "ada", DisplayName: "Ada Lovelace", Email: "ada@example.com"},
		"alan": {UserId: "alan", DisplayName: "Alan Turing", Email: "alan@example.com"},
	}}
}

// GetUser returns one user.
func (u *Users) GetUser(_ context.Context, req *usersv1.GetUserRequest) (*usersv1.User, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	usr, ok := u.users[req.GetUserId()]
	if !ok {
		return nil, notFound("user", req.GetUserId())
	}
	return proto.CloneOf(usr), nil
}

// UpdateUser creates or replaces a user.
func (u *Users) UpdateUser(_ context.Context, req *usersv1.UpdateUserRequest) (*usersv1.User, error) {
	if req.GetUser().GetUserId() == "" {
		return nil, badRequest("user.user_id", "required")
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	usr := proto.CloneOf(req.GetUser())
	u.users[usr.GetUserId()] = usr
	return proto.CloneOf(usr), nil
}

// Chat answers every message in turn.
func (u *Users) Chat(stream grpc.BidiStreamingServer[usersv1.ChatRequest, usersv1.ChatResponse]) error {
	for i := int32(1); ; i++ {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&usersv1.ChatResponse{Text: fmt.Sprintf("support: you said %q", req.GetText()), Sequence: i}); err != nil {
			return err
		}
	}
}
